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

// Bytes of `text` that are not part of a well-formed UTF-8 sequence (a sequence cut off at the end
// counts as well-formed: the sample may end inside one).
std::size_t invalid_utf8_bytes(std::string_view text) {
  std::size_t invalid = 0;
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const std::size_t length = lead < 0x80           ? 1
                               : (lead >> 5) == 0x6  ? 2
                               : (lead >> 4) == 0xE  ? 3
                               : (lead >> 3) == 0x1E ? 4
                                                     : 0;
    if (length == 0) {
      ++invalid, ++i;
      continue;
    }
    std::size_t k = 1;
    while (k < length && i + k < text.size() && (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2) ++k;
    if (k < length && i + k < text.size()) {
      invalid += k;
    }
    i += k;
  }
  return invalid;
}

// Text, as prepare reads it, has no NUL byte and is mostly UTF-8; a program, an image or UTF-16
// text is not, and tokenized as bytes it would silently become training data.
std::string why_not_text(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw Error(path, std::string("cannot be opened: ") + std::strerror(errno));
  std::string sample(64 * 1024, '\0');
  sample.resize(std::fread(sample.data(), 1, sample.size(), file.get()));
  if (const auto nul = sample.find('\0'); nul != std::string::npos) {
    return "holds a NUL byte at offset " + std::to_string(nul) + " (binary data, or UTF-16 text)";
  }
  const std::size_t invalid = invalid_utf8_bytes(sample);
  if (!sample.empty() && invalid * 10 > sample.size()) {
    return std::to_string(100 * invalid / sample.size()) + " % of its first " + std::to_string(sample.size()) +
           " bytes are not UTF-8";
  }
  return "";
}

InputFile classify(const std::string& path, bool binary_ok) {
  const std::int64_t size = file_size(path);
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw Error(path, std::string("cannot be opened: ") + std::strerror(errno));
  const bool tokens = looks_like_llmc_file(path);
  if (!tokens && !binary_ok) {
    if (const std::string why = why_not_text(path); !why.empty()) {
      throw Error(path, "does not look like text: it " + why,
                  "text files (UTF-8), llm.c .bin token files, or --binary-ok to tokenize its bytes anyway");
    }
  }
  return {path, tokens ? InputKind::kLlmcTokens : InputKind::kText, size};
}

}  // namespace

std::vector<InputFile> collect_inputs(const std::vector<std::string>& paths, bool binary_ok) {
  if (paths.empty()) throw Error("inputs", "no input given", "text files, directories or llm.c .bin files");
  std::vector<InputFile> inputs;
  for (const auto& path : paths) {
    if (is_directory(path)) {
      const auto found = list_files_recursive(path);
      if (found.empty()) throw Error(path, "is a directory with no files in it", "a directory holding text files");
      for (const auto& file : found) inputs.push_back(classify(file, binary_ok));
    } else if (is_regular_file(path)) {
      inputs.push_back(classify(path, binary_ok));
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
