// The safetensors format (huggingface/safetensors): 8-byte little-endian header length N, N bytes
// of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the tensor bytes (little-endian, C order). Parsed here with nlohmann-json, no Python.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace aios {

// Reads every tensor of a file onto the CPU. Checks the header length, the JSON, that offsets
// lie inside the data and match dtype x shape, and that tensors do not overlap.
std::map<std::string, at::Tensor> read_safetensors(const std::string& path);

// Writes tensors (made contiguous, moved to the CPU) as F32/F64/F16/BF16/I64/I32 entries, with
// string metadata (transformers wants {"format": "pt"}).
void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace aios
