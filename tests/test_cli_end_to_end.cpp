// Runs the built `aios` binary as a user would.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace aios {
namespace {

using testing::run_aios;

int lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

TEST(EndToEnd, TheSeedProfilesTrain) {
  // The shipped profiles, on a small model and the CPU: each must run as written.
  testing::ScratchDir dir;
  testing::write_file(dir / "corpus/a.txt", testing::sample_text(120'000, 4));
  const std::string set = (dir / "set");
  ASSERT_EQ(run_aios("prepare " + (dir / "corpus") + " --output " + set).status, 0);
  for (const char* profile : {"conservative-vram", "long-context"}) {
    const std::string run = dir / profile;
    auto trained = run_aios(std::string("train --config ") + AIOS_SOURCE_DIR + "/configs/" + profile + ".toml" +
                            " --dataset-file " + set + " --model tiny --n-layer 1 --n-head 2 --n-embd 32 --steps 2" +
                            " --warmup-steps 1 --eval-batches 0 --device cpu --out-dir " + run);
    ASSERT_EQ(trained.status, 0) << profile << ":\n" << trained.output;
    EXPECT_TRUE(path_exists(run + "/ckpt-00000002.pt")) << profile;
  }
}

// `--help` states the real default of every on/off flag, and no "{false}" after a negatable
// pair's names.
TEST(EndToEnd, TrainHelpShowsEachFlagsDefault) {
  const auto help = run_aios("train --help");
  ASSERT_EQ(help.status, 0) << help.output;
  EXPECT_EQ(help.output.find("{false}"), std::string::npos) << help.output;
  for (const char* on :
       {"--verify-shards", "--gradient-checkpointing", "--amp,", "--chunked-loss", "--shard-optimizer"}) {
    const auto at = help.output.find(on);
    ASSERT_NE(at, std::string::npos) << on;
    const auto line_end = help.output.find("(default: ", at);
    EXPECT_EQ(help.output.compare(line_end, 13, "(default: on)"), 0) << on << "\n" << help.output.substr(at, 300);
  }
  for (const char* off : {"--use-8bit-optimizer", "--chunked-training", "--decay-embeddings", "--overwrite"}) {
    const auto at = help.output.find(off);
    ASSERT_NE(at, std::string::npos) << off;
    EXPECT_EQ(help.output.compare(help.output.find("(default: ", at), 14, "(default: off)"), 0) << off;
  }
  EXPECT_EQ(help.output.find("--fault-injection"), std::string::npos) << "a hidden testing aid";
}

// Without --out-dir every run writes to a directory of its own (runs/<UTC date-time>), never
// into another run's; --resume then needs --out-dir to know which run.
TEST(EndToEnd, EachRunWithoutOutDirGetsItsOwnDirectory) {
  testing::ScratchDir dir;
  testing::write_file(dir / "corpus/a.txt", testing::sample_text(40'000, 4));
  ASSERT_EQ(run_aios("prepare " + (dir / "corpus") + " --output " + (dir / "set")).status, 0);
  const std::string train = "cd " + dir.path() + " && " + AIOS_BINARY + " train --dataset-file set --model tiny" +
                            " --n-layer 1 --n-head 2 --n-embd 32 --window-size 16 --steps 1 --warmup-steps 1" +
                            " --eval-batches 0 --device cpu --no-amp 2>&1";
  FILE* pipe = ::popen(train.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer{};
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  ASSERT_EQ(::pclose(pipe), 0) << output;
  const auto at = output.find("no --out-dir: this run writes to runs/");
  ASSERT_NE(at, std::string::npos) << output;
  const std::string run = output.substr(output.find("runs/", at), 20);  // runs/YYYYMMDD-HHMMSS
  EXPECT_TRUE(path_exists(dir / (run + "/ckpt-00000001.pt"))) << run;
  const auto resumed = run_aios("train --dataset-file " + (dir / "set") + " --resume latest");
  EXPECT_EQ(resumed.status, 1);
  EXPECT_NE(resumed.output.find("--resume: needs --out-dir"), std::string::npos) << resumed.output;
}

TEST(EndToEnd, PrepareInspectAndVersion) {
  testing::ScratchDir dir;
  testing::write_file(dir / "corpus/a.txt", testing::sample_text(60'000, 1));
  testing::write_file(dir / "corpus/b.txt", testing::sample_text(20'000, 2));
  const std::string set = (dir / "set");
  auto prepared = run_aios("prepare " + (dir / "corpus") + " --output " + set + " --shard-tokens 32768");
  ASSERT_EQ(prepared.status, 0) << prepared.output;
  EXPECT_NE(prepared.output.find("prepared " + set), std::string::npos) << prepared.output;

  auto inspected = run_aios("inspect " + set + " --verify");
  ASSERT_EQ(inspected.status, 0) << inspected.output;
  EXPECT_NE(inspected.output.find("all 4 shard checksums match"), std::string::npos) << inspected.output;
  auto shard = run_aios("inspect " + set + "/train-000000.h5");
  ASSERT_EQ(shard.status, 0) << shard.output;
  EXPECT_NE(shard.output.find("tokenizer byte"), std::string::npos) << shard.output;

  const std::string run = (dir / "run");
  auto trained = run_aios("train --dataset-file " + set +
                          " --model tiny --n-layer 1 --n-head 2 --n-embd 32 "
                          "--window-size 32 --batch-size 2 --steps 3 --warmup-steps 1 --device cpu --no-amp "
                          "--no-gradient-checkpointing --out-dir " +
                          run + " --log-file " + run + "/m.jsonl");
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_NE(trained.output.find("step 3/3"), std::string::npos) << trained.output;
  EXPECT_EQ(lines(testing::read_file(run + "/m.jsonl")), 4);  // config + 3 steps
  EXPECT_TRUE(path_exists(run + "/ckpt-00000003.pt"));

  auto version = run_aios("--version");
  ASSERT_EQ(version.status, 0);
  EXPECT_NE(version.output.find("LibTorch 2."), std::string::npos) << version.output;
  EXPECT_NE(version.output.find("HDF5"), std::string::npos);

  auto help = run_aios("train --help");
  ASSERT_EQ(help.status, 0);
  for (const char* flag :
       {"--gradient-checkpointing", "--no-amp", "--use-8bit-optimizer", "--gradient-accumulation-steps", "--batch-size",
        "--steps", "--window-size", "--dataset-file", "--log-file", "--model"}) {
    EXPECT_NE(help.output.find(flag), std::string::npos) << flag;
  }
}

TEST(EndToEnd, PlanReadsTrainsConfigAndFitsAGpu) {
  const auto plan =
      run_aios(std::string("plan --config ") + AIOS_SOURCE_DIR + "/configs/gpt2.toml --gpu-memory 80GiB --fit");
  ASSERT_EQ(plan.status, 0) << plan.output;
  for (const char* expected : {"12 layers", "micro-batch 16 x window 1024", "weights", "optimizer state",
                               "activations saved for the backward", "fits in 80.0 GiB", "the largest micro-batch"}) {
    EXPECT_NE(plan.output.find(expected), std::string::npos) << expected << "\n" << plan.output;
  }
  const auto small = run_aios(
      "plan --model gpt2-xl --window-size 1024 --batch-size 16 --no-amp "
      "--no-gradient-checkpointing --no-chunked-loss --gpu-memory 40GiB --fit --json");
  ASSERT_EQ(small.status, 0) << small.output;
  const auto json = nlohmann::json::parse(small.output);
  EXPECT_GT(json["peak_bytes"].get<double>(), 40.0 * (1LL << 30));
  ASSERT_EQ(json["fit"].size(), 2u) << small.output;
  EXPECT_EQ(json["fit"][1]["flags"][0], "--amp");
}

TEST(EndToEnd, BadInputGivesOneLineAndANonZeroExit) {
  testing::ScratchDir dir;
  testing::write_file(dir / "a.txt", "some text\n");
  testing::write_file(dir / "bad.toml", "batch-size = 2\nnot-an-option = 1\n");
  testing::write_file(dir / "empty.txt", "");
  const std::string missing_set = (dir / "nope");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"prepare " + (dir / "missing.txt"), "missing.txt"},
      {"prepare " + (dir / "empty.txt") + " -o " + (dir / "s"), "corpus is empty"},
      {"prepare " + (dir / "a.txt") + " --shard-tokens -5", "--shard-tokens"},
      {"prepare " + (dir / "a.txt") + " --tokenizer " + (dir / "a.txt") + " -o " + (dir / "t"), "a.txt"},
      {"train --dataset-file " + missing_set + " --batch-size -1", "--batch-size"},
      {"train --dataset-file " + missing_set + " --window-size 0", "--window-size"},
      {"train --dataset-file " + missing_set + " --frobnicate", "--frobnicate"},
      {"train --config " + (dir / "bad.toml"), "not-an-option"},
      {"train --dataset-file " + missing_set, "nope"},
      {"inspect " + (dir / "a.txt"), "a.txt"},
      {"plan --model gpt2 --gpu-memory lots", "--gpu-memory"},
      {"plan --model gpt2 --fit", "--fit"},
      {"plan --model gpt2 --dataset-file " + missing_set, "nope"},
  };
  for (const auto& [args, expected] : cases) {
    const auto run = run_aios(args);
    EXPECT_NE(run.status, 0) << args;
    EXPECT_EQ(lines(run.output), 1) << args << "\n" << run.output;
    EXPECT_NE(run.output.find("aios: error: "), std::string::npos) << args << "\n" << run.output;
    EXPECT_NE(run.output.find(expected), std::string::npos) << args << "\n" << run.output;
  }
}

}  // namespace
}  // namespace aios
