// Finds the input files of `aios prepare` and streams text out of them in bounded blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace aios {

enum class InputKind { kText, kLlmcTokens };

struct InputFile {
  std::string path;
  InputKind kind = InputKind::kText;
  std::int64_t bytes = 0;
};

// Expands directories (recursively, sorted, hidden entries skipped) and classifies each file:
// llm.c token files by their magic number, everything else as text. Throws on a missing or
// unreadable path, or when nothing is found.
// Text inputs that do not look like text (a NUL byte, or more than 10 % of the first 64 KiB not
// UTF-8) are refused by name unless `binary_ok`.
std::vector<InputFile> collect_inputs(const std::vector<std::string>& paths, bool binary_ok = false);

// Calls on_block with consecutive pieces of the file, each at most about `block_bytes` long and
// ending just after a newline where the file has one within the block (so that no line is cut
// unless a single line exceeds the block).
void read_text_blocks(const std::string& path, std::size_t block_bytes,
                      const std::function<void(std::string_view)>& on_block);

}  // namespace aios
