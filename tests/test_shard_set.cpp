#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "data/prepare.h"
#include "data/shard_set.h"
#include "test_support.h"

namespace aios {
namespace {

using testing::error_of;
using testing::read_split;

std::string prepare_small_set(const testing::ScratchDir& dir) {
  testing::write_file(dir / "corpus.txt", testing::sample_text(40'000, 5));
  PrepareOptions options;
  options.inputs = {(dir / "corpus.txt")};
  options.output = (dir / "set");
  options.shard_tokens = 16'384;
  options.val_fraction = 0.1;
  prepare_shards(options);
  return options.output;
}

TEST(ShardSet, OpensAndVerifiesAPreparedSet) {
  testing::ScratchDir dir;
  const auto set_dir = prepare_small_set(dir);
  const ShardSet set = ShardSet::open(set_dir);
  EXPECT_EQ(set.manifest().tokens("train") + set.manifest().tokens("val"), 40'000);
  EXPECT_GT(set.manifest().tokens("val"), 0);
  EXPECT_GE(set.manifest().shard_count("train"), 2);
  EXPECT_NO_THROW(set.verify_all_checksums());
}

TEST(ShardSet, ChecksumMismatchIsDetected) {
  testing::ScratchDir dir;
  const auto set_dir = prepare_small_set(dir);
  auto manifest = nlohmann::json::parse(testing::read_file(dir / "set/manifest.json"));
  manifest["shards"][0]["crc32"] = "00000000";
  testing::write_file(dir / "set/manifest.json", manifest.dump());
  const ShardSet set = ShardSet::open(set_dir);  // lengths still agree
  const std::string message = error_of([&] { set.verify_all_checksums(); });
  EXPECT_NE(message.find("checksum"), std::string::npos) << message;
  EXPECT_NE(message.find(manifest["shards"][0]["file"].get<std::string>()), std::string::npos) << message;
}

TEST(ShardSet, LengthMismatchIsDetectedOnOpen) {
  testing::ScratchDir dir;
  const auto set_dir = prepare_small_set(dir);
  auto manifest = nlohmann::json::parse(testing::read_file(dir / "set/manifest.json"));
  manifest["shards"][1]["tokens"] = manifest["shards"][1]["tokens"].get<std::int64_t>() + 1;
  testing::write_file(dir / "set/manifest.json", manifest.dump());
  const std::string message = error_of([&] { ShardSet::open(set_dir); });
  EXPECT_NE(message.find("manifest.json says"), std::string::npos) << message;
}

TEST(ShardSet, MissingShardAndMissingManifestAreNamed) {
  testing::ScratchDir dir;
  const auto set_dir = prepare_small_set(dir);
  remove_tree(dir / "set/train-000000.h5");
  EXPECT_NE(error_of([&] { ShardSet::open(set_dir); }).find("train-000000.h5"), std::string::npos);
  remove_tree(dir / "set/manifest.json");
  EXPECT_NE(error_of([&] { ShardSet::open(set_dir); }).find("has no manifest.json"), std::string::npos);
}

TEST(ShardSet, DamagedManifestIsAClearError) {
  testing::ScratchDir dir;
  const auto set_dir = prepare_small_set(dir);
  testing::write_file(dir / "set/manifest.json", "{\"format\": \"aios-shards\", ");
  const std::string message = error_of([&] { ShardSet::open(set_dir); });
  EXPECT_NE(message.find("manifest.json"), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

// A manifest field of the wrong type or missing is named, with what was found and what is expected.
TEST(ShardSet, AManifestFieldOfTheWrongTypeIsNamed) {
  testing::ScratchDir dir;
  const auto set_dir = prepare_small_set(dir);
  const auto original = nlohmann::json::parse(testing::read_file(dir / "set/manifest.json"));
  const std::vector<std::pair<std::string, std::function<void(nlohmann::json&)>>> cases = {
      {"field \"tokenizer.vocab_size\" is string \"256\"; expected an integer",
       [](nlohmann::json& j) { j["tokenizer"]["vocab_size"] = "256"; }},
      {"field \"shards[1].tokens\" is string", [](nlohmann::json& j) { j["shards"][1]["tokens"] = "many"; }},
      {"field \"val_fraction\" is missing", [](nlohmann::json& j) { j.erase("val_fraction"); }},
      {"field \"sources\" is number 3; expected an array of strings", [](nlohmann::json& j) { j["sources"] = 3; }},
  };
  for (const auto& [expected, damage] : cases) {
    auto j = original;
    damage(j);
    testing::write_file(dir / "set/manifest.json", j.dump());
    const std::string message = error_of([&] { ShardSet::open(set_dir); });
    EXPECT_NE(message.find("manifest.json: " + expected), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace aios
