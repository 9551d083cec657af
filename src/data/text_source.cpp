#include "data/text_source.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/error.h"
#include "base/files.h"
#include "data/llmc_import.h"

namespace aios {
namespace {

InputFile classify(const std::string& path) {
  const std::int64_t size = file_size(path);
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw Error(path, std::string("cannot be opened: ") + std::strerror(errno));
  const bool tokens = looks_like_llmc_file(path);
  return {path, tokens ? InputKind::kLlmcTokens : InputKind::kText, size};
}

}  // namespace

std::vector<InputFile> collect_inputs(const std::vector<std::string>& paths) {
  if (paths.empty()) throw Error("inputs", "no input given", "text files, directories or llm.c .bin files");
  std::vector<InputFile> inputs;
  for (const auto& path : paths) {
    if (is_directory(path)) {
      const auto found = list_files_recursive(path);
      if (found.empty()) throw Error(path, "is a directory with no files in it", "a directory holding text files");
      for (const auto& file : found) inputs.push_back(classify(file));
    } else if (is_regular_file(path)) {
      inputs.push_back(classify(path));
    } else if (!path_exists(path)) {
      throw Error(path, "does not exist", "text files, directories or llm.c .bin files");
    } else {
      throw Error(path, "is not a regular file or directory");
    }
  }
  return inputs;
}

void read_text_blocks(const std::string& path, std::size_t block_bytes,
                      const std::function<void(std::string_view)>& on_block) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw Error(path, std::string("cannot be opened: ") + std::strerror(errno));
  std::string buffer(block_bytes, '\0');
  std::size_t carried = 0;  // bytes after the last newline of the previous read
  for (;;) {
    const std::size_t got = std::fread(buffer.data() + carried, 1, block_bytes - carried, file.get());
    if (std::ferror(file.get())) throw Error(path, "read error");
    const std::size_t filled = carried + got;
    if (got == 0) {
      if (filled > 0) on_block(std::string_view(buffer.data(), filled));
      return;
    }
    std::size_t cut = filled;
    if (filled == block_bytes) {
      const auto* last_newline = static_cast<const char*>(memrchr(buffer.data(), '\n', filled));
      if (last_newline != nullptr) cut = static_cast<std::size_t>(last_newline - buffer.data()) + 1;
    }
    on_block(std::string_view(buffer.data(), cut));
    carried = filled - cut;
    std::memmove(buffer.data(), buffer.data() + cut, carried);
  }
}

}  // namespace aios
