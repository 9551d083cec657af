#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "base/files.h"
#include "cli/app.h"
#include "data/prepare.h"

namespace aios::cli {
namespace {

void run_prepare(PrepareOptions options) {
  if (options.output.empty()) {
    options.output = join_path("shards", file_stem(options.inputs.front()));
  }
  // Progress refreshes one line on a terminal and says nothing in logs.
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  const auto on_progress = [terminal](const PrepareProgress& p) {
    if (!terminal) return;
    std::fprintf(stderr, "\rprepare: %.1f / %.1f MB read, %lld tokens", p.bytes_done / 1e6, p.bytes_total / 1e6,
                 static_cast<long long>(p.tokens));
  };
  const PrepareResult result = prepare_shards(options, on_progress);
  if (terminal) std::fprintf(stderr, "\n");
  const Manifest& m = result.manifest;
  std::printf(
      "prepared %s: %lld train tokens in %lld shard(s), %lld val tokens in %lld shard(s); "
      "tokenizer %s (vocab %lld), %s; %.1f MB in %.2f s (%.1f MB/s)\n",
      result.directory.c_str(), static_cast<long long>(m.tokens("train")),
      static_cast<long long>(m.shard_count("train")), static_cast<long long>(m.tokens("val")),
      static_cast<long long>(m.shard_count("val")), m.tokenizer.kind.c_str(),
      static_cast<long long>(m.tokenizer.vocab_size), to_string(m.dtype).c_str(), result.input_bytes / 1e6,
      result.seconds, result.seconds > 0 ? result.input_bytes / 1e6 / result.seconds : 0.0);
}

}  // namespace

CommandAction add_prepare_command(CLI::App& app) {
  auto options = std::make_shared<PrepareOptions>();
  CLI::App* cmd = app.add_subcommand("prepare", "Tokenize text (or import llm.c .bin token files) into HDF5 shards");
  enable_config_file(*cmd);
  cmd->add_option("inputs", options->inputs, "Text files, directories of text files, or llm.c .bin token files")
      ->required();
  cmd->add_option("-o,--output", options->output,
                  "Shard set directory to create (default: shards/<first input's name>)");
  cmd->add_option("--tokenizer", options->tokenizer,
                  "'byte' (built in, vocab 256); a tokenizer directory (a Hugging Face model's: tokenizer.json, or "
                  "vocab.json + merges.txt; a .tiktoken file; a SentencePiece tokenizer.model) or one of those files")
      ->capture_default_str();
  cmd->add_option("--threads", options->threads, "Encoding threads (default: every usable core)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--train-tokenizer", options->train_tokenizer_vocab,
                  "Train a SentencePiece BPE tokenizer of this vocabulary size on the inputs and use it")
      ->check(CLI::Range(std::int64_t{300}, std::int64_t{1'000'000}));
  cmd->add_option("--shard-tokens", options->shard_tokens, "Tokens per shard file (one shard is buffered in memory)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1024}, std::int64_t{1} << 40));
  cmd->add_option("--val-fraction", options->val_fraction, "Fraction of tokens held out for validation")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--split-block-tokens", options->split_block_tokens,
                  "Largest block of consecutive tokens assigned to one split")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{256}, std::int64_t{1} << 40));
  cmd->add_option("--dtype", options->dtype, "Stored token type")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "uint16", "uint32"}));
  cmd->add_option("--documents", options->documents, "What one document is in text input: a whole file, or a line")
      ->capture_default_str()
      ->check(CLI::IsMember({"file", "line"}));
  cmd->add_option("--vocab-size", options->vocab_size, "llm.c import: vocabulary size (default from the file's magic)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 32));
  cmd->add_option("--end-of-text-id", options->end_of_text_id,
                  "llm.c import: the document delimiter id (default from the file's magic)")
      ->check(CLI::Range(std::int64_t{0}, (std::int64_t{1} << 32) - 1));
  cmd->add_flag("--overwrite", options->overwrite,
                "Replace an existing output directory (only once the new one is complete)");
  cmd->add_flag("--binary-ok", options->binary_ok,
                "Tokenize inputs that do not look like text (NUL bytes, mostly not UTF-8) instead of refusing them");
  return [options] {
    run_prepare(*options);
    return 0;
  };
}

}  // namespace aios::cli
