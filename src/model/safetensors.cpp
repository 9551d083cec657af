#include "model/safetensors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/error.h"
#include "base/files.h"

namespace aios {
namespace {

constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the reference parser's cap

at::ScalarType dtype_from_name(const std::string& name, const std::string& where) {
  static const std::map<std::string, at::ScalarType> types = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool}};
  const auto it = types.find(name);
  if (it == types.end())
    throw Error(where, "unsupported safetensors dtype '" + name + "'", "F64, F32, F16, BF16 or an integer type");
  return it->second;
}

std::string name_of(at::ScalarType type) {
  switch (type) {
    case at::kDouble:
      return "F64";
    case at::kFloat:
      return "F32";
    case at::kHalf:
      return "F16";
    case at::kBFloat16:
      return "BF16";
    case at::kLong:
      return "I64";
    case at::kInt:
      return "I32";
    default:
      throw Error("safetensors", std::string("cannot write dtype ") + c10::toString(type));
  }
}

}  // namespace

std::map<std::string, at::Tensor> read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot be opened for reading");
  const auto file_bytes = static_cast<std::uint64_t>(file_size(path));
  std::uint64_t header_bytes = 0;
  if (!in.read(reinterpret_cast<char*>(&header_bytes), 8) || header_bytes > kMaxHeaderBytes ||
      8 + header_bytes > file_bytes) {
    throw Error(path, "is not a safetensors file (bad header length)", "a model.safetensors file");
  }
  std::string header(header_bytes, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_bytes));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("safetensors header is not valid JSON: ") + e.what());
  }
  const std::uint64_t data_bytes = file_bytes - 8 - header_bytes;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") continue;
    const std::string where = path + ": " + name;
    try {
      const auto type = dtype_from_name(entry.at("dtype").get<std::string>(), where);
      const auto shape = entry.at("shape").get<std::vector<std::int64_t>>();
      const auto offsets = entry.at("data_offsets").get<std::vector<std::uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_bytes) {
        throw Error(where, "data_offsets lie outside the file's data",
                    "0 <= begin <= end <= " + std::to_string(data_bytes));
      }
      auto tensor = at::empty(shape, at::TensorOptions().dtype(type));
      if (static_cast<std::uint64_t>(tensor.nbytes()) != offsets[1] - offsets[0]) {
        throw Error(where, "holds " + std::to_string(offsets[1] - offsets[0]) + " bytes but dtype x shape needs " +
                               std::to_string(tensor.nbytes()));
      }
      in.seekg(static_cast<std::streamoff>(8 + header_bytes + offsets[0]));
      // Copied into a fresh tensor: data may be unaligned when N is not a multiple of 8.
      if (!in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(tensor.nbytes()))) {
        throw Error(where, "read failed (truncated file?)");
      }
      ranges.emplace_back(offsets[0], offsets[1]);
      tensors.emplace(name, std::move(tensor));
    } catch (const nlohmann::json::exception& e) {
      throw Error(where, std::string("malformed safetensors entry: ") + e.what());
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) throw Error(path, "safetensors entries overlap");
  }
  return tensors;
}

void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    auto contiguous = tensor.detach().cpu().contiguous();
    const auto bytes = static_cast<std::uint64_t>(contiguous.nbytes());
    header[name] = {{"dtype", name_of(contiguous.scalar_type())},
                    {"shape", contiguous.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(contiguous));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  const std::uint64_t length = text.size();
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(&length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : data)
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
    if (!out) throw Error(temporary, "write failed");
  }
  rename_path(temporary, path);
}

}  // namespace aios
