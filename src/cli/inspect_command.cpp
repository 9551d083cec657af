#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/files.h"
#include "cli/app.h"
#include "data/shard_set.h"
#include "data/tokenizer.h"

namespace aios::cli {
namespace {

struct InspectOptions {
  std::string path;
  bool verify = false;
  std::int64_t preview_tokens = 64;
};

// Decodes the first tokens of a shard when the set's tokenizer is at hand.
std::string preview(const ShardFileReader& reader, const std::string& set_directory, std::int64_t count) {
  const auto& a = reader.attributes();
  std::unique_ptr<Tokenizer> tokenizer;
  try {
    tokenizer = load_shard_set_tokenizer(set_directory, a.tokenizer_kind);
  } catch (const Error&) {
    // Without its files (or this build's support for them) the preview shows ids.
  }
  count = std::min(count, reader.size());
  std::vector<std::uint32_t> ids(static_cast<std::size_t>(count));
  reader.read(0, count, ids.data());
  if (!tokenizer) {
    std::string text;
    for (auto id : ids) text += std::to_string(id) + " ";
    return "ids: " + text;
  }
  std::string text = tokenizer->decode(ids);
  for (auto& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return "text: \"" + text + "\"";
}

void print_shard_file(const std::string& path, const InspectOptions& options) {
  ShardFileReader reader(path);
  const auto& a = reader.attributes();
  std::printf("shard %s\n  split %s, %lld tokens (%s), %zu documents start here\n", path.c_str(), a.split.c_str(),
              static_cast<long long>(reader.size()), to_string(reader.dtype()).c_str(), reader.doc_offsets().size());
  std::printf("  tokenizer %s (hash %s), vocab %lld, end-of-text %s\n", a.tokenizer_kind.c_str(),
              a.tokenizer_hash.c_str(), static_cast<long long>(a.vocab_size),
              a.end_of_text_id ? std::to_string(*a.end_of_text_id).c_str() : "none");
  std::printf("  crc32 %s\n", reader.compute_crc32().c_str());
  if (options.preview_tokens > 0) {
    std::printf("  first %lld %s\n", static_cast<long long>(std::min(options.preview_tokens, reader.size())),
                preview(reader, parent_path(path), options.preview_tokens).c_str());
  }
}

void print_shard_set(const std::string& path, const InspectOptions& options) {
  const ShardSet set = ShardSet::open(path);
  const Manifest& m = set.manifest();
  std::printf("shard set %s (%s)\n", set.directory().c_str(), m.created_by.c_str());
  std::printf("  tokenizer %s (hash %s), vocab %lld, end-of-text %s, stored as %s\n", m.tokenizer.kind.c_str(),
              m.tokenizer.hash.c_str(), static_cast<long long>(m.tokenizer.vocab_size),
              m.tokenizer.end_of_text_id ? std::to_string(*m.tokenizer.end_of_text_id).c_str() : "none",
              to_string(m.dtype).c_str());
  for (const char* split : {"train", "val"}) {
    std::printf("  %-5s %lld tokens, %lld documents, %lld shard(s)\n", split, static_cast<long long>(m.tokens(split)),
                static_cast<long long>(m.documents(split)), static_cast<long long>(m.shard_count(split)));
  }
  std::printf("  split blocks of %lld tokens, val fraction %g, up to %lld tokens per shard\n",
              static_cast<long long>(m.split_block_tokens), m.val_fraction, static_cast<long long>(m.shard_tokens));
  for (const auto& shard : m.shards) {
    if (options.verify) set.open_shard(shard, /*verify_checksum=*/true);  // throws on a mismatch
    std::printf("  %-18s %-5s %12lld tokens %8lld docs crc32 %s%s\n", shard.file.c_str(), shard.split.c_str(),
                static_cast<long long>(shard.tokens), static_cast<long long>(shard.documents), shard.crc32.c_str(),
                options.verify ? " verified" : "");
  }
  if (options.verify) std::printf("  all %zu shard checksums match manifest.json\n", m.shards.size());
}

void run_inspect(const InspectOptions& options) {
  const std::string& path = options.path;
  if (is_directory(path) || file_name(path) == kManifestFileName) {
    print_shard_set(path, options);
  } else if (file_extension(path) == ".h5") {
    print_shard_file(path, options);
  } else {
    throw Error(options.path, "is not something aios can inspect",
                "a shard set directory, its manifest.json, or a .h5 shard file");
  }
}

}  // namespace

CommandAction add_inspect_command(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Print what a shard set or shard file holds");
  cmd->add_option("path", options->path, "Shard set directory, manifest.json or .h5 shard")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_flag("--verify", options->verify, "Read every shard and check its checksum against the manifest");
  cmd->add_option("--preview-tokens", options->preview_tokens, "Tokens decoded from the start of a shard file")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20));
  return [options] {
    run_inspect(*options);
    return 0;
  };
}

}  // namespace aios::cli
