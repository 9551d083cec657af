#include "data/prepare.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>

#include "base/error.h"
#include "base/files.h"
#include "base/utf8.h"
#include "data/bpe_tokenizer.h"
#include "data/llmc_import.h"
#include "data/manifest.h"
#include "data/parallel_encode.h"
#include "data/shard_writer.h"
#include "data/text_source.h"
#include "data/tokenizer.h"

namespace aios {
namespace {

constexpr std::size_t kTextBlockBytes = 4 << 20;
constexpr std::int64_t kTokenPiece = 1 << 20;

std::string version_string() { return "aios " AIOS_VERSION; }

void check_options(const PrepareOptions& o) {
  if (o.output.empty()) throw Error("--output", "is empty", "a directory path for the shard set");
  if (o.shard_tokens < 1024) {
    throw Error("--shard-tokens", "value " + std::to_string(o.shard_tokens) + " is too small",
                "at least 1024 tokens per shard");
  }
  if (!(o.val_fraction >= 0 && o.val_fraction < 1)) {
    throw Error("--val-fraction", "value " + std::to_string(o.val_fraction) + " is out of range",
                "a fraction in [0, 1)");
  }
  if (o.split_block_tokens < 1) {
    throw Error("--split-block-tokens", "value " + std::to_string(o.split_block_tokens) + " is not positive");
  }
  if (o.documents != "file" && o.documents != "line") {
    throw Error("--documents", "unknown value '" + o.documents + "'", "file or line");
  }
  if (o.dtype != "auto" && o.dtype != "uint16" && o.dtype != "uint32") {
    throw Error("--dtype", "unknown value '" + o.dtype + "'", "auto, uint16 or uint32");
  }
  if (o.train_tokenizer_vocab > 0 && o.tokenizer != "byte") {
    throw Error("--train-tokenizer", "cannot be combined with --tokenizer " + o.tokenizer, "one of them");
  }
}

// --overwrite replaces a shard set that `aios prepare` wrote, and nothing else: an output that is
// (or holds) an input, that has no manifest, or that holds any file its manifest does not list is
// refused by name, before anything is read or written.
void check_output_path(const PrepareOptions& o, const std::vector<InputFile>& inputs) {
  const std::string output = canonical_path(o.output);
  for (const auto& input : inputs) {
    const std::string path = canonical_path(input.path);
    if (path == output || path.rfind(output + "/", 0) == 0) {
      throw Error("--output", o.output + " is, or holds, the input " + input.path + "; writing there would destroy it",
                  "an --output path apart from the inputs");
    }
  }
  if (!o.overwrite || !path_exists(o.output)) return;  // without --overwrite an existing output is refused later
  const std::string manifest_path = join_path(o.output, "manifest.json");
  if (!is_directory(o.output) || !is_regular_file(manifest_path)) {
    throw Error(o.output, "exists and is not a shard set (no manifest.json); --overwrite replaces only a shard set",
                "another --output path (aios deletes only what it wrote)");
  }
  std::set<std::string> listed = {"manifest.json"};
  const Manifest existing = read_manifest(manifest_path);
  for (const auto& shard : existing.shards) listed.insert(shard.file);
  listed.insert(existing.tokenizer.files.begin(), existing.tokenizer.files.end());
  for (const auto& name : list_directory(o.output)) {
    if (listed.count(name) == 0) {
      throw Error(join_path(o.output, name), "is not part of the shard set that --overwrite would replace",
                  "another --output path, or move it out of " + o.output + " first");
    }
  }
}

TokenDtype choose_dtype(const std::string& requested, std::int64_t vocab_size) {
  const TokenDtype needed = smallest_dtype_for(vocab_size);
  if (requested == "auto") return needed;
  const TokenDtype chosen = token_dtype_from_string(requested, "--dtype");
  if (chosen == TokenDtype::kUint16 && needed == TokenDtype::kUint32) {
    throw Error("--dtype", "uint16 cannot hold a vocabulary of " + std::to_string(vocab_size) + " ids",
                "uint32 or auto");
  }
  return chosen;
}

// Small corpora get smaller split blocks, so that the validation split is spread over about
// eight blocks instead of being one block taken from the start.
std::int64_t effective_split_block(const PrepareOptions& o, std::int64_t estimated_tokens) {
  if (o.val_fraction <= 0) return o.split_block_tokens;
  const auto target = static_cast<std::int64_t>(static_cast<double>(estimated_tokens) * o.val_fraction / 8);
  return std::clamp<std::int64_t>(target, 256, std::max<std::int64_t>(256, o.split_block_tokens));
}

class Progress {
 public:
  Progress(std::int64_t total, const std::function<void(const PrepareProgress&)>& callback) : callback_(callback) {
    state_.bytes_total = total;
  }
  void advance(std::int64_t bytes, std::int64_t tokens) {
    state_.bytes_done += bytes;
    state_.tokens = tokens;
    if (callback_) callback_(state_);
  }

 private:
  const std::function<void(const PrepareProgress&)>& callback_;
  PrepareProgress state_;
};

// SentencePiece reads its input as UTF-8 and replaces invalid bytes, so its ids could not give
// the text back: such a file is refused by name (the byte tokenizer and byte-level BPE keep any
// bytes). A character cut at a block's end is completed by the next block.
void require_utf8(const InputFile& input) {
  std::string tail;
  std::int64_t offset = 0;
  read_text_blocks(input.path, kTextBlockBytes, [&](std::string_view block) {
    const std::string text = tail + std::string(block);
    const std::size_t valid = valid_utf8_prefix(text);
    const std::string_view rest = std::string_view(text).substr(valid);
    const auto lead = rest.empty() ? 0 : static_cast<unsigned char>(rest[0]);
    const std::size_t needed = lead >= 0xc2 && lead <= 0xdf   ? 2
                               : lead >= 0xe0 && lead <= 0xef ? 3
                               : lead >= 0xf0 && lead <= 0xf4 ? 4
                                                              : 0;
    const bool cut_character = needed > rest.size() && std::all_of(rest.begin() + 1, rest.end(), [](char c) {
                                 return (static_cast<unsigned char>(c) & 0xc0) == 0x80;
                               });
    if (!rest.empty() && !cut_character) {
      throw Error(input.path,
                  "is not valid UTF-8 (byte " + std::to_string(offset + static_cast<std::int64_t>(valid)) +
                      "), and SentencePiece would replace its invalid bytes",
                  "UTF-8 text, or a tokenizer that keeps any bytes: --tokenizer byte or a byte-level BPE");
    }
    offset += static_cast<std::int64_t>(valid);
    tail = text.substr(valid);
  });
  if (!tail.empty()) {
    throw Error(input.path, "ends inside a UTF-8 character, and SentencePiece would replace it",
                "UTF-8 text, or --tokenizer byte or a byte-level BPE");
  }
}

// Encoding runs on `threads` cores over text gathered from consecutive blocks; what follows the
// last split point waits for the next block, so that ids never depend on where blocks were cut.
// Without a split point in 64 MiB (one endless line) the text is encoded as it stands.
void tokenize_text(const std::vector<InputFile>& inputs, const Tokenizer& tokenizer, const std::string& documents,
                   int threads, ShardSetWriter& writer, Progress& progress) {
  const auto eot = tokenizer.end_of_text_id();
  const std::size_t gather_bytes = std::max<std::size_t>(kTextBlockBytes, static_cast<std::size_t>(threads) << 20);
  constexpr std::size_t kLongestWait = std::size_t{64} << 20;
  std::vector<std::uint32_t> ids;
  std::vector<std::size_t> lengths;
  auto end_document = [&] {
    if (eot) writer.append(std::span<const std::uint32_t>(&*eot, 1));
  };
  for (const auto& input : inputs) {
    std::string pending;
    std::int64_t pending_read = 0;  // bytes read but not yet reported
    const auto encode_pending = [&](bool final) {
      ids.clear();
      if (documents == "file") {
        std::size_t used = encode_in_parallel(tokenizer, pending, final, threads, ids);
        if (used == 0 && pending.size() > kLongestWait)
          used = encode_in_parallel(tokenizer, pending, true, threads, ids);
        writer.append(ids);
        pending.erase(0, used);
      } else {
        lengths.clear();
        encode_lines_in_parallel(tokenizer, pending, threads, ids, lengths);
        std::size_t offset = 0;
        for (const std::size_t length : lengths) {
          writer.begin_document();
          writer.append(std::span<const std::uint32_t>(ids).subspan(offset, length));
          end_document();
          offset += length;
        }
        pending.clear();
      }
      progress.advance(pending_read, writer.tokens_appended());
      pending_read = 0;
    };
    if (documents == "file") writer.begin_document();
    // Blocks end after a newline, so line mode never cuts a line.
    read_text_blocks(input.path, kTextBlockBytes, [&](std::string_view block) {
      pending.append(block);
      pending_read += static_cast<std::int64_t>(block.size());
      if (pending.size() >= gather_bytes) encode_pending(false);
    });
    encode_pending(true);
    if (documents == "file") end_document();
  }
}

// llm.c names its validation files *_val.bin or *_val_*.bin (tinyshakespeare_val.bin, fineweb_val_000000.bin).
bool is_llmc_validation_file(const InputFile& input) {
  const std::string stem = file_stem(input.path);
  return stem.ends_with("_val") || stem.find("_val_") != std::string::npos;
}

// llm.c files mark documents with a delimiter token at each document's start. When llm.c's own
// validation files are among the inputs, they are the val split and the others the train split.
void import_llmc(const std::vector<InputFile>& inputs, std::uint32_t delimiter, std::int64_t vocab_size,
                 ShardSetWriter& writer, Progress& progress) {
  const bool own_split = std::any_of(inputs.begin(), inputs.end(), is_llmc_validation_file);
  for (const auto& input : inputs) {
    if (own_split) writer.send_all_to(is_llmc_validation_file(input) ? "val" : "train");
    const auto header = read_llmc_header(input.path);
    read_llmc_tokens(input.path, kTokenPiece, [&](std::span<const std::uint32_t> tokens) {
      std::size_t start = 0;
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] >= static_cast<std::uint64_t>(vocab_size)) {
          throw Error(
              input.path,
              "token id " + std::to_string(tokens[i]) + " is not below the vocab size " + std::to_string(vocab_size),
              "--vocab-size larger than every id");
        }
        if (tokens[i] == delimiter) {
          writer.append(tokens.subspan(start, i - start));
          writer.begin_document();
          start = i;
        }
      }
      writer.append(tokens.subspan(start));
      progress.advance(static_cast<std::int64_t>(tokens.size()) * bytes_per_token(header.dtype),
                       writer.tokens_appended());
    });
  }
}

}  // namespace

PrepareResult prepare_shards(const PrepareOptions& options,
                             const std::function<void(const PrepareProgress&)>& on_progress) {
  const auto started = std::chrono::steady_clock::now();
  check_options(options);
  const auto inputs = collect_inputs(options.inputs, options.binary_ok);
  const bool tokens_input = inputs.front().kind == InputKind::kLlmcTokens;
  const bool llmc_own_split = tokens_input && std::any_of(inputs.begin(), inputs.end(), is_llmc_validation_file);
  std::int64_t input_bytes = 0;
  for (const auto& input : inputs) {
    if ((input.kind == InputKind::kLlmcTokens) != tokens_input) {
      throw Error(input.path, "mixes llm.c token files with text files in one prepare",
                  "only text inputs, or only llm.c .bin inputs");
    }
    input_bytes += input.bytes;
  }
  check_output_path(options, inputs);
  // What a killed prepare of this output left beside it (its staging folder), removed now.
  const std::string output_name = file_name(options.output);
  const auto is_output = [&](const std::string& stem) { return stem == output_name; };
  for (const auto& name : remove_stale_temporaries(parent_path(options.output), is_output, /*any_pid=*/false)) {
    std::fprintf(stderr, "aios prepare: removed %s, left by an interrupted prepare\n",
                 join_path(parent_path(options.output), name).c_str());
  }

  StagedDirectory staging(options.output, options.overwrite);
  Manifest manifest;
  manifest.name = file_name(options.output);
  manifest.created_by = version_string();
  for (const auto& input : inputs) manifest.sources.push_back(input.path);

  std::unique_ptr<Tokenizer> tokenizer;
  std::int64_t estimated_tokens = input_bytes;
  std::uint32_t llmc_delimiter = 0;
  if (tokens_input) {
    if (options.tokenizer != "byte" || options.train_tokenizer_vocab > 0) {
      throw Error("--tokenizer", "does not apply to llm.c token files (they are already tokenized)",
                  "--vocab-size and --end-of-text-id to describe their vocabulary");
    }
    const auto header = read_llmc_header(inputs.front().path);
    manifest.tokenizer.kind = "llmc-import";
    manifest.tokenizer.hash = header.magic == kLlmcGpt2Magic ? kGpt2TokenizerHash : "llama3-tiktoken";
    manifest.tokenizer.vocab_size = options.vocab_size > 0 ? options.vocab_size : header.default_vocab_size;
    llmc_delimiter =
        options.end_of_text_id >= 0 ? static_cast<std::uint32_t>(options.end_of_text_id) : header.default_end_of_text;
    manifest.tokenizer.end_of_text_id = llmc_delimiter;
    estimated_tokens = 0;
    for (const auto& input : inputs) estimated_tokens += read_llmc_header(input.path).tokens;
    if (llmc_own_split) {
      std::fprintf(stderr, "aios prepare: llm.c's own split: *_val files go to the val split, the others to train%s\n",
                   options.val_fraction != PrepareOptions{}.val_fraction ? " (--val-fraction does not apply)" : "");
    }
  } else {
    std::string model_path = options.tokenizer;
    const bool sentencepiece = options.train_tokenizer_vocab > 0 || file_extension(model_path) == ".model" ||
                               (is_directory(model_path) && is_regular_file(join_path(model_path, "tokenizer.model")) &&
                                !is_regular_file(join_path(model_path, "tokenizer.json")) &&
                                !is_regular_file(join_path(model_path, "vocab.json")));
    if (sentencepiece) {
      for (const auto& input : inputs) require_utf8(input);
    }
    if (options.train_tokenizer_vocab > 0) {
      std::vector<std::string> paths;
      for (const auto& input : inputs) paths.push_back(input.path);
      model_path = train_sentencepiece(paths, options.train_tokenizer_vocab, join_path(staging.path(), "tokenizer"));
      remove_tree(join_path(staging.path(), "tokenizer.vocab"));
    }
    tokenizer = load_tokenizer(model_path);
    if (options.train_tokenizer_vocab > 0 && tokenizer->vocab_size() < options.train_tokenizer_vocab) {
      std::fprintf(stderr,
                   "aios prepare: note: the trained tokenizer has %lld pieces, fewer than the %lld asked: the corpus "
                   "holds no more that SentencePiece would keep\n",
                   static_cast<long long>(tokenizer->vocab_size()),
                   static_cast<long long>(options.train_tokenizer_vocab));
    }
    // The tokenizer's files travel with the shards: the set alone decodes its ids.
    for (const auto& file : tokenizer->files()) {
      const std::string copy = join_path(staging.path(), file.name);
      if (canonical_path(file.path) != canonical_path(copy)) copy_file(file.path, copy);
    }
    manifest.tokenizer.kind = tokenizer->kind();
    manifest.tokenizer.hash = tokenizer->hash();
    manifest.tokenizer.vocab_size = tokenizer->vocab_size();
    manifest.tokenizer.end_of_text_id = tokenizer->end_of_text_id();
    if (const auto files = tokenizer->files(); !files.empty()) {
      for (const auto& file : files) manifest.tokenizer.files.push_back(file.name);
      estimated_tokens = input_bytes / 4;
    }
  }
  manifest.dtype = choose_dtype(options.dtype, manifest.tokenizer.vocab_size);
  manifest.shard_tokens = options.shard_tokens;
  manifest.val_fraction = llmc_own_split ? 0.0 : options.val_fraction;  // llm.c's own split is not by blocks
  manifest.split_block_tokens = effective_split_block(options, estimated_tokens);

  ShardSetWriterOptions writer_options;
  writer_options.directory = staging.path();
  writer_options.shard_tokens = options.shard_tokens;
  writer_options.val_fraction = manifest.val_fraction;
  writer_options.split_block_tokens = manifest.split_block_tokens;
  writer_options.dtype = manifest.dtype;
  writer_options.attributes.vocab_size = manifest.tokenizer.vocab_size;
  writer_options.attributes.tokenizer_kind = manifest.tokenizer.kind;
  writer_options.attributes.tokenizer_hash = manifest.tokenizer.hash;
  writer_options.attributes.end_of_text_id = manifest.tokenizer.end_of_text_id;
  ShardSetWriter writer(writer_options);
  Progress progress(input_bytes, on_progress);

  if (tokens_input) {
    import_llmc(inputs, llmc_delimiter, manifest.tokenizer.vocab_size, writer, progress);
  } else {
    const int threads = options.threads > 0 ? options.threads : usable_cores();
    tokenize_text(inputs, *tokenizer, options.documents, threads, writer, progress);
  }
  manifest.shards = writer.finish();
  if (manifest.tokens("train") + manifest.tokens("val") == 0) {
    throw Error(options.inputs.front(), "the corpus is empty (no tokens after tokenization)",
                "at least one non-empty text file");
  }
  write_manifest(join_path(staging.path(), kManifestFileName), manifest);
  staging.commit();

  PrepareResult result;
  result.manifest = std::move(manifest);
  result.directory = options.output;
  result.input_bytes = input_bytes;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace aios
