#include <algorithm>
#include <cstdlib>
#include <map>
#include <regex>
#include <thread>

#include "base/error.h"
#include "data/shard_file.h"
#include "distributed/comm.h"
#include "io/checkpoint.h"
#include "io/metrics_log.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"
#include "train/fault_injection.h"
#include "trainer_fixture.h"

namespace aios {
namespace {

TEST_F(TrainerTest, LossFallsAndMetricsAreLogged) {
  auto o = options("run");
  o.run.steps = 30;
  o.run.eval_batches = 2;
  o.run.eval_interval = 10;
  o.run.log_file = dir_ / "run/metrics.jsonl";
  const auto summary = train(o);
  EXPECT_EQ(summary.steps_done, 30);
  EXPECT_LT(summary.last_loss, summary.first_loss - 1.0) << summary.first_loss << " -> " << summary.last_loss;
  EXPECT_GT(summary.last_val_loss, 0);
  std::ifstream log(o.run.log_file);
  std::string line;
  std::getline(log, line);
  const auto header = nlohmann::json::parse(line);
  EXPECT_EQ(header["type"], "config");
  EXPECT_EQ(header["model"]["n_layer"], 2);
  int steps = 0, evals = 0;
  while (std::getline(log, line)) {
    const auto record = nlohmann::json::parse(line);
    for (const char* key : {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "step_time_ms", "micro_batch",
                            "accumulation", "mfu"}) {
      ASSERT_TRUE(record.contains(key)) << key << " in " << line;
    }
    ++steps;
    evals += record.contains("val_loss");
  }
  EXPECT_EQ(steps, 30);
  EXPECT_EQ(evals, 3);
}

TEST_F(TrainerTest, ProfileOfChosenStepsIsAChromeTraceOfTheModelsOperators) {
  auto o = options("profiled");
  o.run.steps = 4;
  o.run.profile_file = dir_ / "profiled/trace.json";
  o.run.profile_from = 2, o.run.profile_steps = 2;
  train(o);
  std::ifstream file(o.run.profile_file);
  ASSERT_TRUE(file.good()) << o.run.profile_file;
  const auto trace = nlohmann::json::parse(file);
  std::map<std::string, int> operators;
  for (const auto& event : trace.at("traceEvents")) {
    if (event.value("cat", "") == "cpu_op") ++operators[event.value("name", "")];
  }
  // Two steps of a 2-layer model: each step's forward has at least one layer norm per block, and
  // the backward runs the optimizer's fused kernel once.
  EXPECT_GE(operators["aten::layer_norm"], 2 * 2 * 2) << trace.dump().substr(0, 2000);
  EXPECT_GE(operators["aten::_fused_adamw_"], 2);
  EXPECT_FALSE(std::ifstream(o.run.profile_file + ".tmp").good());
}

TEST_F(TrainerTest, MicroBatchTimesAccumulationLeavesTheUpdateUnchanged) {
  // float64 so that only summation order differs between the splits.
  std::vector<std::vector<torch::Tensor>> results;
  for (auto [batch, accumulation] : {std::pair{4, 1}, {2, 2}, {1, 4}}) {
    auto o = options("acc" + std::to_string(batch));
    o.model.dtype = ModelDtype::kFloat64;
    o.data.batch_size = batch;
    o.data.gradient_accumulation_steps = accumulation;
    o.run.steps = 3;
    results.push_back(parameters_of(train(o).last_checkpoint, o));
  }
  for (std::size_t run = 1; run < results.size(); ++run) {
    for (std::size_t i = 0; i < results[0].size(); ++i) {
      ASSERT_LT((results[0][i] - results[run][i]).abs().max().item<double>(), 1e-12)
          << "run " << run << " tensor " << i;
    }
  }
}

TEST_F(TrainerTest, CheckpointingAndChunkedLossLeaveTheTrainingUnchanged) {
  std::vector<std::vector<torch::Tensor>> results;
  // Checkpointing and a small loss chunk (7 tokens: ragged against 64 tokens per micro-batch)
  // against neither.
  for (bool techniques : {false, true}) {
    auto o = options(techniques ? "ckpt" : "plain");
    o.model.dtype = ModelDtype::kFloat64;
    o.memory.gradient_checkpointing = techniques;
    o.memory.chunked_loss = techniques;
    o.memory.loss_chunk_tokens = techniques ? 7 : 0;
    o.run.steps = 3;
    results.push_back(parameters_of(train(o).last_checkpoint, o));
  }
  for (std::size_t i = 0; i < results[0].size(); ++i) {
    ASSERT_LT((results[0][i] - results[1][i]).abs().max().item<double>(), 1e-12) << "tensor " << i;
  }
}

TEST_F(TrainerTest, ResumeIsBitIdentical) {
  auto straight = options("straight");
  straight.run.steps = 6;
  straight.run.checkpoint_interval = 3;
  const auto end = train(straight).last_checkpoint;
  auto resumed = options("resumed");
  resumed.run.steps = 6;
  resumed.run.resume = dir_ / "straight/ckpt-00000003.pt";
  const auto resumed_end = train(resumed).last_checkpoint;
  const auto a = parameters_of(end, straight), b = parameters_of(resumed_end, resumed);
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
  // 'latest' names the newest checkpoint of a run directory.
  EXPECT_EQ(testing::read_file(dir_ / "straight/latest"), "ckpt-00000006.pt\n");
}

// The loop reads a step's loss after it has queued the next step, so a checkpoint found due while
// reading a step late (here a timed one, due at every read) is written after the next step, and
// must hold that step's weights and data position: resuming from each checkpoint written that way
// ends where the run without them ends, bit for bit, and every step keeps one record, in order.
TEST_F(TrainerTest, CheckpointsFoundDueWhileReadingAStepLateHoldTheNextStepsState) {
  auto plain = options("late-plain");
  plain.run.steps = 7;
  const auto end = parameters_of(train(plain).last_checkpoint, plain);
  auto timed = options("late-timed");
  timed.run.steps = 7;
  timed.run.checkpoint_minutes = 1e-9;  // due whenever a step is read
  timed.run.keep_last = 0;              // keep them all
  timed.run.log_file = dir_ / "late-timed.jsonl";
  train(timed);
  const auto records = records_of(timed.run.log_file, "step");
  ASSERT_EQ(records.size(), 7u);
  for (std::size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i]["step"], i + 1);
  int checked = 0;
  for (int step = 1; step < 7; ++step) {
    char file[32];
    std::snprintf(file, sizeof(file), "ckpt-%08d.pt", step);
    const std::string name = file;
    if (!is_regular_file(dir_ / ("late-timed/" + name))) continue;
    auto resumed = options("late-resumed-" + std::to_string(step));
    resumed.run.steps = 7;
    resumed.run.resume = dir_ / ("late-timed/" + name);
    const auto b = parameters_of(train(resumed).last_checkpoint, resumed);
    for (std::size_t i = 0; i < end.size(); ++i) ASSERT_TRUE(torch::equal(end[i], b[i])) << name << " tensor " << i;
    ++checked;
  }
  EXPECT_GE(checked, 2) << "checkpoints written during the run";
}

// With dropout the random state is part of what a checkpoint must restore: 6 steps equal 3 +
// resume + 3 bit for bit, and dropout does act (the run differs from one without it).
TEST_F(TrainerTest, ResumeWithDropoutIsBitIdentical) {
  auto straight = options("dropout-straight");
  straight.model.dropout = 0.1;
  straight.run.steps = 6;
  straight.run.checkpoint_interval = 3;
  const auto end = train(straight).last_checkpoint;
  auto resumed = options("dropout-resumed");
  resumed.model.dropout = 0.1;
  resumed.run.steps = 6;
  resumed.run.resume = dir_ / "dropout-straight/ckpt-00000003.pt";
  const auto resumed_end = train(resumed).last_checkpoint;
  auto no_dropout = options("no-dropout");
  no_dropout.run.steps = 6;
  const auto a = parameters_of(end, straight), b = parameters_of(resumed_end, resumed),
             c = parameters_of(train(no_dropout).last_checkpoint, no_dropout);
  bool differs = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
    differs = differs || !torch::equal(a[i], c[i]);
  }
  EXPECT_TRUE(differs) << "dropout 0.1 changed nothing";
}

TEST_F(TrainerTest, ResumeAutoStartsFreshThenContinues) {
  auto o = options("auto");
  o.run.resume = "auto";
  o.run.steps = 2;
  EXPECT_EQ(train(o).steps_done, 2);  // no checkpoint yet: a fresh start
  o.run.steps = 4;
  o.run.log_file = dir_ / "auto/metrics.jsonl";
  train(o);
  EXPECT_EQ(records_of(o.run.log_file, "config").at(0)["resumed_from_step"], 2);
  EXPECT_EQ(records_of(o.run.log_file, "step").size(), 2u);
  // A finished run resumed again trains nothing (and says so); --steps below the checkpoint's
  // step is an error naming both.
  EXPECT_EQ(train(o).steps_done, 4);
  EXPECT_EQ(records_of(o.run.log_file, "step").size(), 2u);
  o.run.steps = 3;
  o.optimizer.warmup_steps = 1;
  const std::string message = testing::error_of([&] { train(o); });
  EXPECT_EQ(message.rfind("--steps: 3 is below the step of the checkpoint resumed (4)", 0), 0u) << message;
}

// Where a run writes is checked before its first step: an out-dir that is a file or cannot be
// made, a profile or export path that cannot be written, each one line naming the option.
TEST_F(TrainerTest, UnwritableOutputsAreFoundBeforeTheFirstStep) {
  testing::write_file(dir_ / "a-file", "not a directory");
  const std::vector<std::pair<std::string, std::function<void(TrainOptions&)>>> cases = {
      {"--out-dir", [&](TrainOptions& o) { o.run.out_dir = dir_ / "a-file"; }},
      {"--out-dir", [&](TrainOptions& o) { o.run.out_dir = "/proc/aios-cannot-exist/run"; }},
      {"--profile-file", [&](TrainOptions& o) { o.run.profile_file = "/proc/aios-cannot-exist/trace.json"; }},
      {"--export-hf", [&](TrainOptions& o) { o.run.export_hf = dir_ / "a-file"; }},
  };
  for (const auto& [option, change] : cases) {
    auto o = options("outputs");
    o.run.log_file = dir_ / "outputs.jsonl";
    o.run.steps = 6;
    o.run.profile_from = 1;
    change(o);
    const std::string message = testing::error_of([&] { train(o); });
    EXPECT_EQ(message.rfind(option, 0), 0u) << option << ": " << message;
    EXPECT_FALSE(path_exists(o.run.log_file)) << option << ": the run started before the error";
  }
  EXPECT_EQ(testing::read_file(dir_ / "a-file"), "not a directory");
}

// A fresh run into an out-dir with checkpoints is refused unless told (--overwrite), leaving them as
// they were; a second run into an out-dir in use is refused while the first holds its lock.
TEST_F(TrainerTest, AnOutDirIsNeitherOverwrittenUnaskedNorSharedByTwoRuns) {
  auto o = options("used");
  o.run.steps = 2;
  o.optimizer.warmup_steps = 1;
  train(o);
  const std::string checkpoint = testing::read_file(dir_ / "used/ckpt-00000002.pt");
  const std::string refused = testing::error_of([&] { train(o); });
  EXPECT_EQ(refused.rfind("--out-dir", 0), 0u) << refused;
  EXPECT_NE(refused.find("holds checkpoints of an earlier run (latest: ckpt-00000002.pt)"), std::string::npos)
      << refused;
  EXPECT_NE(refused.find("--overwrite"), std::string::npos) << refused;
  EXPECT_EQ(testing::read_file(dir_ / "used/ckpt-00000002.pt"), checkpoint);
  o.run.overwrite = true;
  EXPECT_EQ(train(o).steps_done, 2);

  const FileLock held(dir_ / "used/.lock", "test");  // as another run would hold it
  o.run.resume = "latest";
  o.run.steps = 3;
  const std::string busy = testing::error_of([&] { train(o); });
  EXPECT_NE(busy.find("is in use by another run (process " + std::to_string(::getpid())), std::string::npos) << busy;
}

// Temporary files of interrupted checkpoint writes in the out-dir are removed at the next start
// (the run holds the out-dir's lock, so no live writer can own them); other files stay.
TEST_F(TrainerTest, InterruptedCheckpointWritesAreCleanedAtTheNextStart) {
  auto o = options("leftovers");
  o.run.steps = 2;
  o.optimizer.warmup_steps = 1;
  testing::write_file(dir_ / "leftovers/ckpt-00000007.pt.tmp-12345", std::string(1000, 'x'));
  testing::write_file(dir_ / "leftovers/ckpt-00000007.optimizer-rank-00001-of-00002.pt.tmp-777", "x");
  testing::write_file(dir_ / "leftovers/notes.txt", "mine");
  testing::write_file(dir_ / "leftovers/notes.tmp-12345", "mine too: not a name aios writes");
  train(o);
  EXPECT_FALSE(path_exists(dir_ / "leftovers/ckpt-00000007.pt.tmp-12345"));
  EXPECT_FALSE(path_exists(dir_ / "leftovers/ckpt-00000007.optimizer-rank-00001-of-00002.pt.tmp-777"));
  EXPECT_EQ(testing::read_file(dir_ / "leftovers/notes.txt"), "mine");
  EXPECT_EQ(testing::read_file(dir_ / "leftovers/notes.tmp-12345"), "mine too: not a name aios writes");
  EXPECT_TRUE(path_exists(dir_ / "leftovers/ckpt-00000002.pt"));
}

// A token outside the vocabulary (a damaged shard, read with --no-verify-shards) is one error
// naming the shard, not an index error from deep inside the embedding.
TEST_F(TrainerTest, ATokenOutsideTheVocabularyNamesItsShard) {
  // Damage the first token of the validation shard in place (validation reads its first windows):
  // find its first 16 tokens (uint16, little-endian) among the file's bytes, overwrite the first.
  const std::string shard = dir_ / "set/val-000000.h5";
  std::vector<std::int64_t> head(16);
  ShardFileReader(shard).read(0, 16, head.data());
  std::string pattern;
  for (const auto token : head) pattern += {static_cast<char>(token & 0xff), static_cast<char>(token >> 8)};
  std::string bytes = testing::read_file(shard);
  const auto at = bytes.find(pattern);
  ASSERT_NE(at, std::string::npos);
  bytes[at] = bytes[at + 1] = static_cast<char>(0xff);
  testing::write_file(shard, bytes);
  auto o = options("oov");
  o.data.verify_shards = false;
  o.run.eval_batches = 1;
  const std::string message = testing::error_of([&] { train(o); });
  EXPECT_EQ(message.rfind(shard + ": token id 65535 at position 0 is outside the tokenizer's vocabulary of 256", 0), 0u)
      << message;
}

// Weights holding a NaN are never checkpointed (latest would name them and every resume would
// fail): one line naming the step, and nothing written.
TEST_F(TrainerTest, WeightsWithANaNAreNeverCheckpointed) {
  GptConfig c = gpt_preset("tiny");
  c.n_layer = 1, c.n_embd = 32, c.n_head = 2, c.vocab_size = 256, c.max_positions = 16;
  Gpt model(c);
  const AdamWSettings settings;
  auto optimizer = make_adamw(adamw_groups(*model, settings), settings, false);
  LossScaler scaler(false, torch::kCPU);
  auto comm = make_comm(torch::kCPU);
  TrainProgress progress;
  progress.step = 7;
  const std::string out = dir_ / "nan-weights";
  EXPECT_NO_THROW(
      save_checkpoint(out, *model, *optimizer, scaler, progress, CheckpointMetadata{.model = c}, *comm, false));
  {
    torch::NoGradGuard no_grad;
    model->parameters()[3].view({-1})[0] = std::nan("");
  }
  progress.step = 8;
  const std::string message = testing::error_of([&] {
    save_checkpoint(out, *model, *optimizer, scaler, progress, CheckpointMetadata{.model = c}, *comm, false);
  });
  EXPECT_EQ(message.rfind("step 8: the weights hold inf or NaN values", 0), 0u) << message;
  EXPECT_FALSE(path_exists(out + "/ckpt-00000008.pt"));
  EXPECT_EQ(testing::read_file(out + "/latest"), "ckpt-00000007.pt\n");
}

// Logs that serve a batch job: every JSONL line carries the wall-clock time and the seconds since the
// run started; off a terminal the progress line comes every N updates or every `plain_seconds`,
// whichever is first, stamped with the date and time.
TEST_F(TrainerTest, LogsCarryTimestampsAndProgressComesByTimeOffATerminal) {
  auto o = options("stamped");
  o.run.log_file = dir_ / "stamped.jsonl";
  train(o);
  double elapsed = 0;
  for (const char* type : {"config", "step"}) {
    for (const auto& record : records_of(o.run.log_file, type)) {
      const std::string time = record.at("time");
      EXPECT_TRUE(std::regex_match(time, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"))) << time;
      EXPECT_GE(record.at("elapsed_s").get<double>(), elapsed);
      elapsed = record.at("elapsed_s").get<double>();
    }
  }
  ::testing::internal::CaptureStderr();
  {
    ProgressLine line(/*plain_every=*/1000, /*quiet=*/false, /*plain_seconds=*/0.2);
    line.update("first");  // neither the 1000th update nor 0.2 s after the start
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    line.update("second");
  }
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(printed.find("first"), std::string::npos) << printed;
  EXPECT_TRUE(std::regex_search(printed, std::regex(R"(^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] second\n$)"))) << printed;
}

// Retention: the newest K checkpoints, those at multiples of M, and never the one `latest` names;
// files aios did not write stay.
TEST_F(TrainerTest, KeepLastAndKeepEveryPruneOnlyAiosCheckpoints) {
  auto o = options("keep");
  o.run.steps = 7;
  o.run.checkpoint_interval = 1;
  o.run.keep_last = 2;
  o.run.keep_every = 3;
  testing::write_file(dir_ / "keep/ckpt-notes.txt", "mine");
  train(o);
  std::vector<std::string> checkpoints;
  for (const auto& name : list_directory(dir_ / "keep")) {
    if (name.rfind("ckpt-0", 0) == 0 && name.ends_with(".pt")) checkpoints.push_back(name);
  }
  std::sort(checkpoints.begin(), checkpoints.end());
  EXPECT_EQ(checkpoints, (std::vector<std::string>{"ckpt-00000003.pt", "ckpt-00000006.pt", "ckpt-00000007.pt"}));
  EXPECT_EQ(testing::read_file(dir_ / "keep/ckpt-notes.txt"), "mine");
  EXPECT_EQ(testing::read_file(dir_ / "keep/latest"), "ckpt-00000007.pt\n");
  // `latest` is never removed, even when it is not among the newest (it names an older one here).
  testing::write_file(dir_ / "keep/latest", "ckpt-00000003.pt\n");
  auto removed = prune_checkpoints(dir_ / "keep", 1, 0);
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{"ckpt-00000006.pt", "ckpt-00000006.pt.crc32"}));
  EXPECT_TRUE(path_exists(dir_ / "keep/ckpt-00000003.pt"));
}

// Every checkpoint file has its checksum beside it. A damaged one is named when a resume reads it,
// with the newest intact checkpoint offered; --resume auto takes that one itself and says so.
TEST_F(TrainerTest, ADamagedCheckpointIsNamedAndAutoResumeTakesTheNewestIntactOne) {
  auto o = options("crc");
  o.run.steps = 4;
  o.run.checkpoint_interval = 2;
  o.optimizer.warmup_steps = 1;
  train(o);
  ASSERT_TRUE(is_regular_file(dir_ / "crc/ckpt-00000004.pt.crc32"));
  std::string bytes = testing::read_file(dir_ / "crc/ckpt-00000004.pt");
  bytes[bytes.size() / 2] ^= 0x01;  // one flipped bit
  testing::write_file(dir_ / "crc/ckpt-00000004.pt", bytes);
  o.run.steps = 6;
  o.run.resume = "latest";
  const std::string message = testing::error_of([&] { train(o); });
  EXPECT_NE(message.find("ckpt-00000004.pt: does not match its checksum"), std::string::npos) << message;
  EXPECT_NE(message.find("--resume " + (dir_ / "crc/ckpt-00000002.pt") + " (the newest intact checkpoint)"),
            std::string::npos)
      << message;
  o.run.resume = "auto";
  o.run.log_file = dir_ / "crc.jsonl";
  EXPECT_EQ(train(o).steps_done, 6);
  EXPECT_EQ(records_of(o.run.log_file, "config").at(0)["resumed_from_step"], 2);
}

// Fault variables act only in a run that asks for them: a stray one in a real run's environment
// changes nothing (here it would make step 2's loss NaN and stop the run).
TEST_F(TrainerTest, FaultVariablesAreIgnoredWithoutFaultInjection) {
  auto o = options("no-faults");
  o.run.fault_injection = false;
  testing::ScopedEnv inject("AIOS_FAULT_NAN_LOSS_AT_STEP", "2");
  const auto summary = train(o);
  EXPECT_EQ(summary.steps_done, 4);
  EXPECT_TRUE(std::isfinite(summary.last_loss));
  EXPECT_EQ(FaultInjector::variables_set(), std::vector<std::string>{"AIOS_FAULT_NAN_LOSS_AT_STEP"});
}

TEST_F(TrainerTest, NonFiniteLossStopsAndKeepsTheLastCheckpoint) {
  auto o = options("nan");
  o.run.steps = 6;
  o.run.checkpoint_interval = 2;
  ::setenv("AIOS_FAULT_NAN_LOSS_AT_STEP", "4", 1);
  std::string message;
  try {
    train(o);
  } catch (const Error& e) {
    message = e.what();
  }
  ::unsetenv("AIOS_FAULT_NAN_LOSS_AT_STEP");
  EXPECT_NE(message.find("step 4"), std::string::npos) << message;
  EXPECT_EQ(testing::read_file(dir_ / "nan/latest"), "ckpt-00000002.pt\n");
  EXPECT_FALSE(path_exists(dir_ / "nan/ckpt-00000004.pt"));
  // And the run resumes from it.
  o.run.resume = "latest";
  EXPECT_EQ(train(o).steps_done, 6);
}

TEST_F(TrainerTest, InconsistentSetupsFailBeforeTraining) {
  auto error_of = [](const TrainOptions& o) -> std::string {
    try {
      train(o);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  auto o = options("bad");
  o.model.vocab_size = 100;  // the byte dataset has 256 ids
  EXPECT_NE(error_of(o).find("--vocab-size"), std::string::npos);
  o = options("bad");
  o.data.window_size = 128;  // above --seq-len 64
  EXPECT_NE(error_of(o).find("--window-size"), std::string::npos);
  o = options("bad");
  o.model.dtype = ModelDtype::kFloat64;
  o.memory.amp = true;  // AMP wraps float32 models only
  EXPECT_NE(error_of(o).find("--amp"), std::string::npos);
  // A checkpoint of another shape.
  auto first = options("shape");
  train(first);
  auto other = options("shape");
  other.model.n_layer = 3;
  other.run.resume = "latest";
  EXPECT_NE(error_of(other).find("was written for a model of 2 layers"), std::string::npos) << error_of(other);
  // A checkpoint of the other optimizer kind.
  auto eight_bit = options("shape");
  eight_bit.optimizer.use_8bit_optimizer = true;
  eight_bit.run.resume = "latest";
  EXPECT_NE(error_of(eight_bit).find("--use-8bit-optimizer"), std::string::npos) << error_of(eight_bit);
  EXPECT_FALSE(path_exists(dir_ / "bad"));
}

}  // namespace
}  // namespace aios
