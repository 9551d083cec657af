#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "cli/app.h"
#include "cli/train_command.h"
#include "test_support.h"
#include "train/setup.h"

namespace aios {
namespace {

TrainOptions parse(std::vector<std::string> args) {
  TrainOptions options;
  CLI::App app;
  cli::enable_config_file(app);
  cli::bind_train_options(app, options);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector in reverse order
  app.parse(args);
  cli::apply_config_file(app);
  return options;
}

TEST(TrainOptions, SeedFlagNamesParse) {
  const auto o = parse({"--dataset-file", "shards/x", "--batch-size", "4", "--gradient-accumulation-steps", "8",
                        "--steps", "20", "--window-size", "512", "--no-gradient-checkpointing", "--no-amp",
                        "--use-8bit-optimizer", "--log-file", "m.jsonl", "--model", "gpt2"});
  EXPECT_EQ(o.data.dataset_file, "shards/x");
  EXPECT_EQ(o.data.batch_size, 4);
  EXPECT_EQ(o.data.gradient_accumulation_steps, 8);
  EXPECT_EQ(o.run.steps, 20);
  EXPECT_EQ(o.data.window_size, 512);
  EXPECT_FALSE(o.memory.gradient_checkpointing);
  EXPECT_FALSE(o.memory.amp);
  EXPECT_TRUE(o.optimizer.use_8bit_optimizer);
  EXPECT_EQ(o.run.log_file, "m.jsonl");
  EXPECT_EQ(o.model.preset, "gpt2");
}

TEST(TrainOptions, ConfigFileGivesTheSameOptionsAndTheCommandLineWins) {
  testing::ScratchDir dir;
  testing::write_file(dir / "c.toml",
                      "dataset-file = \"shards/demo\"\nbatch-size = 3\nwindow-size = 128\namp = false\n"
                      "gradient-checkpointing = false\nlr = 0.001\n");
  const auto from_file = parse({"--config", (dir / "c.toml")});
  EXPECT_EQ(from_file.data.dataset_file, "shards/demo");
  EXPECT_EQ(from_file.data.batch_size, 3);
  EXPECT_EQ(from_file.data.window_size, 128);
  EXPECT_FALSE(from_file.memory.amp);
  EXPECT_FALSE(from_file.memory.gradient_checkpointing);
  EXPECT_DOUBLE_EQ(from_file.optimizer.lr, 0.001);
  const auto overridden = parse({"--config", (dir / "c.toml"), "--batch-size", "7", "--amp"});
  EXPECT_EQ(overridden.data.batch_size, 7);
  EXPECT_TRUE(overridden.memory.amp);
  EXPECT_EQ(overridden.data.window_size, 128);
}

// to_json is the one serialisation of the options (the run header carries it): written out as a
// config file, every option that differs from its default parses back to the same value.
TEST(TrainOptions, OptionsWrittenAsAConfigFileParseBackToTheSameOptions) {
  const auto o = parse({"--dataset-file",
                        "shards/x",
                        "--batch-size",
                        "3",
                        "--gradient-accumulation-steps",
                        "5",
                        "--pos",
                        "rope",
                        "--seq-len",
                        "128",
                        "--model-dtype",
                        "float64",
                        "--no-amp",
                        "--amp-dtype",
                        "fp16",
                        "--attention",
                        "math",
                        "--chunked-training",
                        "--chunk-size",
                        "64",
                        "--chunk-mode",
                        "truncated",
                        "--chunk-memory",
                        "32",
                        "--lr",
                        "0.002",
                        "--decay-embeddings",
                        "--bucket-mb",
                        "12.5",
                        "--no-shard-optimizer",
                        "--out-dir",
                        "runs/a",
                        "--resume",
                        "latest",
                        "--seed",
                        "7"});
  const auto written = to_json(o), defaults = to_json(TrainOptions{});
  std::string toml;
  for (const auto& [group, fields] : written.items()) {
    for (const auto& [key, value] : fields.items()) {
      if (value != defaults[group][key]) toml += key + " = " + value.dump() + "\n";
    }
  }
  EXPECT_NE(toml.find("chunk-mode = \"truncated\""), std::string::npos) << toml;
  testing::ScratchDir dir;
  testing::write_file(dir / "written.toml", toml);
  EXPECT_EQ(to_json(parse({"--config", (dir / "written.toml")})), written) << toml;
  EXPECT_EQ(o.model.position, PositionEncoding::kRope);
  EXPECT_EQ(o.memory.chunk_mode, ChunkMode::kTruncated);
  EXPECT_EQ(o.memory.attention, AttentionBackend::kMath);
}

TEST(TrainOptions, ShippedConfigsParse) {
  for (const char* name :
       {"conservative-vram.toml", "gpt2.toml", "long-context.toml", "tiny-demo.toml", "techniques/fp32-baseline.toml",
        "techniques/amp-bf16.toml", "techniques/checkpointing.toml", "techniques/8bit-adamw.toml",
        "techniques/chunked-loss.toml", "techniques/amp-chunked-loss.toml", "techniques/all-together.toml"}) {
    const std::string path = join_path(AIOS_SOURCE_DIR "/configs", name);
    ASSERT_TRUE(path_exists(path)) << path;
    EXPECT_NO_THROW(parse({"--config", path})) << name;
  }
}

TEST(TrainOptions, BadValuesAreRejectedWithTheOptionName) {
  auto message_of = [](std::vector<std::string> args) -> std::string {
    try {
      parse(std::move(args));
    } catch (const CLI::ParseError& e) {
      return e.what();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message_of({"--batch-size", "-1"}).find("--batch-size"), std::string::npos);
  EXPECT_NE(message_of({"--window-size", "0"}).find("--window-size"), std::string::npos);
  EXPECT_NE(message_of({"--model", "gpt5"}).find("--model"), std::string::npos);
  EXPECT_NE(message_of({"--bogus"}).find("--bogus"), std::string::npos);
  for (const char* option : {"--amp-dtype", "--attention", "--pos", "--chunk-mode"}) {
    EXPECT_NE(message_of({option, "nonsense"}).find(option), std::string::npos) << option;
  }
  EXPECT_NE(message_of({"--bucket-mb", "0"}).find("--bucket-mb"), std::string::npos);
  EXPECT_NE(message_of({"--chunk-size", "0"}).find("--chunk-size"), std::string::npos);
  testing::ScratchDir dir;
  testing::write_file(dir / "bad.toml", "batch-size = 2\nbatch-sizee = 3\n");
  EXPECT_NE(message_of({"--config", (dir / "bad.toml")}).find("batch-sizee"), std::string::npos);
}

TEST(TrainOptions, CrossOptionChecksNameTheOptions) {
  TrainOptions o;
  EXPECT_THROW(validate(o), Error);  // no dataset
  o.data.dataset_file = "x";
  o.optimizer.min_lr = 1.0;
  try {
    validate(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--min-lr"), std::string::npos);
  }
  auto message_of = [](const TrainOptions& options) { return testing::error_of([&] { validate(options); }); };
  TrainOptions chunks;
  chunks.data.dataset_file = "x";
  chunks.memory.chunk_size = 512;  // without --chunked-training
  EXPECT_NE(message_of(chunks).find("--chunk-size"), std::string::npos) << message_of(chunks);
  chunks.memory.chunked_training = true;
  chunks.memory.chunk_memory = 256;  // exact mode has no memory
  EXPECT_NE(message_of(chunks).find("--chunk-memory"), std::string::npos) << message_of(chunks);
  chunks.memory.chunk_mode = ChunkMode::kTruncated;
  EXPECT_EQ(message_of(chunks), "");
  chunks.memory.chunk_size = 0;
  EXPECT_NE(message_of(chunks).find("--chunk-size"), std::string::npos) << message_of(chunks);
  TrainOptions rope;
  rope.data.dataset_file = "x";
  rope.model.position = PositionEncoding::kRope;
  rope.run.export_hf = "out";
  EXPECT_NE(message_of(rope).find("--export-hf"), std::string::npos) << message_of(rope);
  TrainOptions profile;
  profile.data.dataset_file = "x";
  profile.run.steps = 6, profile.optimizer.warmup_steps = 1;
  profile.run.profile_file = "trace.json";
  profile.run.profile_from = 5, profile.run.profile_steps = 2;
  EXPECT_EQ(message_of(profile), "");
  profile.run.profile_steps = 3;  // steps 5..7 of 6
  EXPECT_NE(message_of(profile).find("--profile-from"), std::string::npos) << message_of(profile);
}

// A NaN passes every range check (comparisons with it are false); every real-valued option is
// refused by name when it is not finite, from the command line or a config file.
TEST(TrainOptions, NonFiniteNumbersAreRefusedByName) {
  for (const char* option : {"--lr", "--min-lr", "--weight-decay", "--beta1", "--beta2", "--eps", "--grad-clip",
                             "--dropout", "--bucket-mb", "--hang-timeout", "--peak-tflops"}) {
    for (const char* value : {"nan", "inf"}) {
      std::string message;
      try {
        validate(parse({"--dataset-file", "shards/x", option, value}));
      } catch (const CLI::ParseError& e) {  // inf: the option's range check
        message = e.what();
      } catch (const Error& e) {  // nan: validate
        message = e.what();
      }
      EXPECT_NE(message.find(option), std::string::npos) << option << " " << value << ": " << message;
    }
  }
  testing::ScratchDir dir;
  testing::write_file(dir / "nan.toml", "lr = nan\n");
  const std::string message = testing::error_of([&] {
    validate(parse({"--dataset-file", "x", "--config", dir / "nan.toml"}));
  });
  EXPECT_NE(message.find("--lr"), std::string::npos) << message;
}

// A syntax mistake in a config file is reported with the file, the line and the problem, also when
// the key is given on the command line too (which would otherwise hide it).
TEST(TrainOptions, ConfigSyntaxErrorsNameTheFileAndLine) {
  testing::ScratchDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"steps = 10\nbatch-size 8\n", ":2: 'batch-size 8' is not a key = value line"},
      {"batch-size =\n", ":1: key 'batch-size' has no value"},
      {"# comment\nlog-file = \"m.jsonl\n", ":2: the string value of 'log-file' is not closed"},
      {"model = gpt2\n", ":1: value 'gpt2' of 'model' is not a number, true, false or a quoted string"},
      {"[train\n", ":1: section header '[train' has no closing ']'"},
  };
  for (const auto& [text, expected] : cases) {
    testing::write_file(dir / "bad.toml", text);
    std::string message;
    try {
      parse({"--config", dir / "bad.toml", "--batch-size", "4"});
    } catch (const Error& e) {
      message = e.what();
    }
    EXPECT_EQ(message.rfind(dir / "bad.toml" + expected, 0), 0u) << text << " -> " << message;
  }
  testing::write_file(dir / "good.toml",
                      "# all forms\nsteps = 1000  # a comment\nlr = 6e-4\namp = false\n"
                      "log-file = \"a#b.jsonl\"\nmodel = 'gpt2'\n");
  EXPECT_NO_THROW(parse({"--config", dir / "good.toml"}));
}

// An option that matters only with another is refused without it, naming both.
TEST(TrainOptions, OptionsThatWouldBeIgnoredAreRefused) {
  auto message_of = [](std::vector<std::string> args) {
    args.insert(args.begin(), {"--dataset-file", "x"});
    return testing::error_of([&] { validate(parse(args)); });
  };
  EXPECT_NE(message_of({"--no-chunked-loss", "--loss-chunk-tokens", "512"}).find("--loss-chunk-tokens"),
            std::string::npos);
  EXPECT_NE(message_of({"--no-gradient-checkpointing", "--checkpoint-every", "2"}).find("--checkpoint-every"),
            std::string::npos);
  const std::string amp = message_of({"--no-amp", "--amp-dtype", "fp16"});
  EXPECT_NE(amp.find("--amp-dtype"), std::string::npos) << amp;
  EXPECT_NE(amp.find("--no-amp"), std::string::npos) << amp;
  EXPECT_EQ(message_of({"--chunked-loss", "--loss-chunk-tokens", "512"}), "");
  EXPECT_EQ(message_of({"--gradient-checkpointing", "--checkpoint-every", "2"}), "");
  EXPECT_NE(
      message_of({"--no-gradient-checkpointing", "--no-keep-attention-output"}).find("--no-keep-attention-output"),
      std::string::npos);
  EXPECT_EQ(message_of({"--no-keep-attention-output"}), "");
  EXPECT_EQ(message_of({"--no-gradient-checkpointing"}), "");
  EXPECT_EQ(message_of({"--amp", "--amp-dtype", "fp16"}), "");
  EXPECT_EQ(message_of({"--no-amp"}), "");
}

// One GPU per rank, whatever Slurm or the launcher made visible: per-task binding (each rank sees
// one GPU), a node's GPUs seen by all its ranks, and --device cuda:N honoured as given.
TEST(DeviceChoice, EachRankGetsAGpuUnderPerTaskBindingOrANodesGpus) {
  EXPECT_EQ(cuda_device_for_rank(std::nullopt, 5, 1), 0);  // srun --gpus-per-task=1
  EXPECT_EQ(cuda_device_for_rank(std::nullopt, 5, 8), 5);  // mpirun on a node of 8
  EXPECT_EQ(cuda_device_for_rank(3, 5, 8), 3);             // --device cuda:3 is not overridden
  EXPECT_NE(testing::error_of([] { cuda_device_for_rank(std::nullopt, 2, 2); }).find("local rank 2 has no GPU"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] { cuda_device_for_rank(4, 0, 2); }).find("cuda:4 but this rank sees 2 GPU(s)"),
            std::string::npos);
}

}  // namespace
}  // namespace aios
