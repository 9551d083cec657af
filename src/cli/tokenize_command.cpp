// `aios tokenize`: text to ids and back with any tokenizer aios reads, to check a tokenizer or
// count a file's tokens. Ids go out as text (one line, space-separated) or as little-endian
// uint32 with --output.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "base/error.h"
#include "base/files.h"
#include "cli/app.h"
#include "data/parallel_encode.h"
#include "data/tokenizer.h"

namespace aios::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer = "byte";
  std::string input;  // a file; "" with --text
  std::string text;
  std::string output;  // "" prints
  bool decode = false;
  int threads = 0;
};

void write_output(const std::string& path, const std::string& bytes) {
  if (path.empty()) {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    return;
  }
  write_file_atomically(path, bytes);
}

std::vector<std::uint32_t> read_ids(const TokenizeOptions& o) {
  std::vector<std::uint32_t> ids;
  if (!o.text.empty()) {
    std::istringstream numbers(o.text);
    std::string word;
    while (numbers >> word) {
      std::size_t used = 0;
      unsigned long id = 0;
      try {
        id = std::stoul(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != word.size() || id > 0xffffffffUL) {
        throw Error("--text", "'" + word + "' is not a token id", "ids separated by spaces, e.g. --text '464 3290'");
      }
      ids.push_back(static_cast<std::uint32_t>(id));
    }
    return ids;
  }
  const std::string bytes = read_text_file(o.input);
  if (bytes.size() % 4 != 0) {
    throw Error(o.input, "is " + std::to_string(bytes.size()) + " bytes, not a whole number of uint32 ids",
                "a file written by `aios tokenize --output`");
  }
  ids.resize(bytes.size() / 4);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data() + 4 * i);
    ids[i] = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
  }
  return ids;
}

int run_tokenize(const TokenizeOptions& o) {
  if (o.input.empty() == o.text.empty()) {
    throw Error("aios tokenize", "needs one input", "a FILE or --text, not both");
  }
  if (!o.input.empty() && !is_regular_file(o.input)) {
    throw Error(o.input, "does not exist or is not a file", "a text file (or uint32 ids with --decode)");
  }
  // A file that is already there is not written over: it may be anything of the user's.
  if (!o.output.empty() && path_exists(o.output)) {
    throw Error("--output", o.output + " already exists", "a path where no file is yet");
  }
  const auto tokenizer = load_tokenizer(o.tokenizer);
  if (o.decode) {
    const auto ids = read_ids(o);
    for (const auto id : ids) {
      if (id >= static_cast<std::uint64_t>(tokenizer->vocab_size())) {
        throw Error(o.input.empty() ? "--text" : o.input, "holds id " + std::to_string(id),
                    "ids below the tokenizer's vocabulary size " + std::to_string(tokenizer->vocab_size()));
      }
    }
    write_output(o.output, tokenizer->decode(ids));
    return 0;
  }
  const std::string text = o.text.empty() ? read_text_file(o.input) : o.text;
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::uint32_t> ids;
  encode_in_parallel(*tokenizer, text, /*final=*/true, o.threads > 0 ? o.threads : usable_cores(), ids);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (o.output.empty()) {
    std::string line;
    for (std::size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  } else {
    std::string bytes(ids.size() * 4, '\0');
    for (std::size_t i = 0; i < ids.size(); ++i) {
      for (int k = 0; k < 4; ++k) bytes[4 * i + k] = static_cast<char>((ids[i] >> (8 * k)) & 0xff);
    }
    write_output(o.output, bytes);
  }
  std::fprintf(stderr, "aios tokenize: %zu bytes -> %zu tokens (tokenizer %s:%s, vocab %lld) in %.3f s (%.1f MB/s)\n",
               text.size(), ids.size(), tokenizer->kind().c_str(), tokenizer->hash().c_str(),
               static_cast<long long>(tokenizer->vocab_size()), seconds,
               seconds > 0 ? text.size() / 1e6 / seconds : 0.0);
  return 0;
}

}  // namespace

CommandAction add_tokenize_command(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Encode text to token ids, or decode ids to text, with a tokenizer");
  cmd->add_option("input", o->input, "Text file to encode (with --decode: a file of uint32 ids)");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "'byte', a tokenizer directory (tokenizer.json, vocab.json + merges.txt, .tiktoken, "
                  "tokenizer.model) or one of those files")
      ->capture_default_str();
  cmd->add_option("--text", o->text, "Text to encode instead of a file (with --decode: ids separated by spaces)");
  cmd->add_option("-o,--output", o->output, "Write little-endian uint32 ids (with --decode: the text) to this file");
  cmd->add_flag("--decode", o->decode, "Decode ids to text");
  cmd->add_option("--threads", o->threads, "Encoding threads (default: every usable core)")->check(CLI::Range(1, 4096));
  return [o] { return run_tokenize(*o); };
}

}  // namespace aios::cli
