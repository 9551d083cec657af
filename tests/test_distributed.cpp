// Data parallel over MPI ranks on the CPU (the same code paths NCCL takes on GPUs): the tests
// start `mpirun -np N --oversubscribe aios train ...` and compare the checkpoints with a 1-rank run
// of the same global batch. Covers plain all-reduce, ZeRO-1 with fp32 and 8-bit state, an
// out-of-memory on one rank, resume, and a rank that dies mid-step.
#include <torch/cuda.h>

#include <chrono>
#include <cstdlib>
#include <functional>

#include "distributed/zero_sharding.h"
#include "io/zero_reshard.h"
#include "optim/optimizer.h"
#include "trainer_fixture.h"

namespace aios {
namespace {

class DistributedTest : public TrainerTest {
 protected:
  void SetUp() override {
    TrainerTest::SetUp();
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    ASSERT_EQ(std::system("command -v mpirun > /dev/null"), 0) << "mpirun (openmpi-bin) is required";
  }

  // A 2-layer, 64-wide float64 model: its matrices are above the 8-bit threshold, and float64
  // keeps Adam from magnifying summation-order differences between world sizes.
  TrainOptions run_options(const std::string& run, int world, int global_batch) const {
    auto o = options(run);
    o.model.n_embd = 64;
    o.model.dtype = ModelDtype::kFloat64;
    o.data.batch_size = global_batch / world;
    o.run.steps = 4;
    o.run.log_file = dir_ / (run + ".jsonl");
    return o;
  }

  // Runs `aios train` for `o` on `world` ranks (directly for 1); returns the exit status and
  // keeps the output in dir_/run.log.
  int launch(const TrainOptions& o, int world, const std::string& extra = "", const std::string& env = "") const {
    std::string command = env + " ";
    if (world > 1)
      command += "mpirun -np " + std::to_string(world) +
                 " --oversubscribe -x AIOS_FAULT_OOM_AT_STEP "
                 "-x AIOS_FAULT_RANK -x AIOS_FAULT_EXIT_AT_STEP -x AIOS_FAULT_OOM_IN -x AIOS_FAULT_HANG_AT_STEP "
                 "-x AIOS_FAULT_SIGNAL_AT_STEP -x AIOS_FAULT_SIGNAL -x AIOS_FAULT_INF_GRAD_AT_STEP ";
    command += std::string(AIOS_BINARY) + " train --dataset-file " + o.data.dataset_file + " --model tiny --n-layer 2" +
               " --n-head 2 --n-embd " + std::to_string(o.model.n_embd) +
               " --seq-len 64 --window-size 16 --batch-size " + std::to_string(o.data.batch_size) + " --steps " +
               std::to_string(o.run.steps) + " --warmup-steps 1 --lr 0.01 --min-lr 0.001 --eval-batches " +
               std::to_string(o.run.eval_batches) + " --device " + device_ + " --no-amp" +
               " --no-gradient-checkpointing --model-dtype " + to_string(o.model.dtype) + " --out-dir " +
               o.run.out_dir + " --log-file " + o.run.log_file + " --fault-injection " + extra + " > " + o.run.out_dir +
               ".log 2>&1";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }

  std::string log_of(const TrainOptions& o) const { return testing::read_file(o.run.out_dir + ".log"); }

  std::string device_ = "cpu";

  std::vector<torch::Tensor> final_parameters(const TrainOptions& o) const {
    return parameters_of(o.run.out_dir + "/ckpt-0000000" + std::to_string(o.run.steps) + ".pt", o);
  }
};

TEST_F(DistributedTest, TwoAndThreeRanksMatchOneRankForAllReduceAndZeroWithFp32And8BitState) {
  for (const std::string optimizer : {"", "--use-8bit-optimizer"}) {
    const auto single = run_options("one" + std::to_string(optimizer.size()), 1, 6);
    ASSERT_EQ(launch(single, 1, optimizer), 0) << log_of(single);
    const auto expected = final_parameters(single);
    for (int world : {2, 3}) {
      for (const std::string sharding : {"--shard-optimizer", "--no-shard-optimizer"}) {
        if (!optimizer.empty() && sharding == "--no-shard-optimizer") continue;  // plain DP: optimizer-agnostic
        const auto o = run_options("w" + std::to_string(world) + sharding + std::to_string(optimizer.size()), world, 6);
        ASSERT_EQ(launch(o, world, optimizer + " " + sharding), 0) << log_of(o);
        EXPECT_LT(max_relative_difference(final_parameters(o), expected), 1e-5)
            << world << " ranks " << sharding << " " << optimizer;
        const auto header = records_of(o.run.log_file, "config").at(0);
        EXPECT_EQ(header["distributed"]["world"], world);
        EXPECT_EQ(header["distributed"]["sharded_optimizer"], sharding == "--shard-optimizer");
      }
    }
  }
}

// The same comparison over NCCL on two GPUs, with small buckets so that many reduce-scatters and
// all-reduces overlap the backward on NCCL's own stream (float64: only summation order differs).
TEST_F(DistributedTest, TwoGpusOverNcclMatchOneGpu) {
  if (torch::cuda::device_count() < 2) GTEST_SKIP() << "needs 2 CUDA devices (bench/run.sh distributed-tests)";
  device_ = "cuda";
  for (const std::string optimizer : {"", "--use-8bit-optimizer"}) {
    const auto single = run_options("gpu-one" + std::to_string(optimizer.size()), 1, 6);
    ASSERT_EQ(launch(single, 1, optimizer), 0) << log_of(single);
    const auto expected = final_parameters(single);
    for (const std::string sharding : {"--shard-optimizer", "--no-shard-optimizer"}) {
      if (!optimizer.empty() && sharding == "--no-shard-optimizer") continue;
      const auto o = run_options("gpu-two" + sharding + std::to_string(optimizer.size()), 2, 6);
      ASSERT_EQ(launch(o, 2, optimizer + " " + sharding + " --bucket-mb 0.02"), 0) << log_of(o);
      EXPECT_NE(log_of(o).find("nccl"), std::string::npos) << log_of(o);
      EXPECT_LT(max_relative_difference(final_parameters(o), expected), 1e-5) << sharding << " " << optimizer;
    }
  }
}

// Long-context chunks under mpirun: the buckets are armed before a micro-batch's last chunk's
// backward, and exact chunks call backward once per chunk. 2 and 3 ranks equal 1 rank in both modes.
TEST_F(DistributedTest, ChunkedTrainingOnTwoAndThreeRanksMatchesOneRank) {
  for (const std::string mode : {"exact", "truncated"}) {
    const std::string chunks = " --pos rope --chunked-training --chunk-size 6 --chunk-mode " + mode;
    auto single = run_options("chunks-one-" + mode, 1, 6);
    single.model.position = PositionEncoding::kRope;  // for reading the checkpoints back
    ASSERT_EQ(launch(single, 1, "--use-8bit-optimizer" + chunks), 0) << log_of(single);
    for (int world : {2, 3}) {
      auto o = run_options("chunks-" + std::to_string(world) + "-" + mode, world, 6);
      o.model.position = PositionEncoding::kRope;
      ASSERT_EQ(launch(o, world, "--use-8bit-optimizer --bucket-mb 0.02" + chunks), 0) << log_of(o);
      EXPECT_LT(max_relative_difference(final_parameters(o), final_parameters(single)), 1e-5) << world << " " << mode;
    }
  }
}

TEST_F(DistributedTest, ZeroShardsOptimizerStateAcrossRanks) {
  std::vector<std::int64_t> totals;
  for (int world : {1, 2}) {
    const auto o = run_options("state" + std::to_string(world), world, 4);
    ASSERT_EQ(launch(o, world, "--use-8bit-optimizer"), 0) << log_of(o);
    const auto per_rank = records_of(o.run.log_file, "config").at(0)["distributed"]["optimizer_state_bytes_per_rank"];
    ASSERT_EQ(per_rank.size(), static_cast<std::size_t>(world));
    totals.push_back(per_rank[0].get<std::int64_t>());
  }
  // Half per rank, up to the padding of each parameter to whole 256-element blocks per rank.
  EXPECT_LT(static_cast<double>(totals[1]), 0.6 * static_cast<double>(totals[0])) << totals[0] << " vs " << totals[1];
}

TEST_F(DistributedTest, OutOfMemoryOnOneRankShrinksEveryRankAndChangesNothing) {
  const auto plain = run_options("plain3", 3, 6);
  ASSERT_EQ(launch(plain, 3), 0) << log_of(plain);
  const auto faulted = run_options("oom3", 3, 6);
  ASSERT_EQ(launch(faulted, 3, "", "AIOS_FAULT_OOM_AT_STEP=3 AIOS_FAULT_RANK=1"), 0) << log_of(faulted);
  const std::string log = log_of(faulted);
  for (int rank = 0; rank < 3; ++rank) {
    const std::string line = "rank " + std::to_string(rank) + ": step 3: out of memory on rank(s) 1 at micro-batch 2";
    EXPECT_NE(log.find(line), std::string::npos) << line << " in:\n" << log;
  }
  const auto events = records_of(faulted.run.log_file, "event");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["micro_batch"], 1);
  EXPECT_EQ(events[0]["accumulation"], 2);
  EXPECT_LT(max_relative_difference(final_parameters(faulted), final_parameters(plain)), 1e-5);

  // In forward, before its backward: ranks 0 and 2 are already inside the gradient collectives
  // of their last backward; rank 1 issues the same collectives before agreeing (no deadlock).
  for (const std::string sharding : {"--shard-optimizer", "--no-shard-optimizer"}) {
    const auto early = run_options("oom-forward" + sharding, 3, 6);
    ASSERT_EQ(launch(early, 3, sharding, "AIOS_FAULT_OOM_AT_STEP=3 AIOS_FAULT_RANK=1 AIOS_FAULT_OOM_IN=forward"), 0)
        << log_of(early);
    EXPECT_NE(log_of(early).find("rank 2: step 3: out of memory on rank(s) 1"), std::string::npos) << log_of(early);
    EXPECT_LT(max_relative_difference(final_parameters(early), final_parameters(plain)), 1e-5) << sharding;
  }
}

// An out-of-memory in the middle of one rank's backward, when buckets of the later layers are
// already on their way on every rank (small buckets): plain data parallel and ZeRO-1 with 8-bit
// state, on 2 and 3 ranks, recover by shrinking and end where an unfaulted run ends.
TEST_F(DistributedTest, OutOfMemoryInTheMiddleOfTheBackwardRecoversOnEveryRank) {
  for (const int world : {2, 3}) {
    for (const std::string flags : {"--no-shard-optimizer", "--shard-optimizer --use-8bit-optimizer"}) {
      const std::string tag = std::to_string(world) + (flags.size() > 20 ? "-zero8" : "-dp");
      const auto plain = run_options("mid-plain" + tag, world, 6);
      ASSERT_EQ(launch(plain, world, flags + " --bucket-mb 0.01"), 0) << log_of(plain);
      const auto faulted = run_options("mid-oom" + tag, world, 6);
      ASSERT_EQ(launch(faulted, world, flags + " --bucket-mb 0.01",
                       "AIOS_FAULT_OOM_AT_STEP=2 AIOS_FAULT_RANK=1 AIOS_FAULT_OOM_IN=mid-backward"),
                0)
          << log_of(faulted);
      const auto events = records_of(faulted.run.log_file, "event");
      ASSERT_EQ(events.size(), 1u) << tag << ": " << log_of(faulted);
      EXPECT_EQ(events[0]["ranks"][1], 1) << tag << ": rank 1 ran out of memory";
      EXPECT_NE(log_of(faulted).find("rank 0: step 2: out of memory on rank(s) 1"), std::string::npos)
          << log_of(faulted);
      EXPECT_LT(max_relative_difference(final_parameters(faulted), final_parameters(plain)), 1e-5) << tag;
    }
  }
}

TEST_F(DistributedTest, ShardedResumeIsBitIdenticalAndReshardsToAnotherWorldSize) {
  // 6 windows per step: divisible by 1, 2 and 3 ranks.
  auto two = run_options("two", 2, 6);
  two.run.steps = 6;
  ASSERT_EQ(launch(two, 2, "--use-8bit-optimizer --checkpoint-interval 3"), 0) << log_of(two);
  const std::string middle = two.run.out_dir + "/ckpt-00000003.pt";
  auto resumed = run_options("resumed", 2, 6);
  resumed.run.steps = 6;
  ASSERT_EQ(launch(resumed, 2, "--use-8bit-optimizer --resume " + middle), 0) << log_of(resumed);
  const auto a = final_parameters(two), b = final_parameters(resumed);
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;

  // The 8-bit state re-sliced from 2 ranks to 3 and to 1, key by key: each new rank's codes and
  // block maxima are, bit for bit, its slice of the old ranks' pieces joined in rank order.
  std::vector<torch::serialize::InputArchive> saved(2);
  for (int r = 0; r < 2; ++r) {
    torch::serialize::InputArchive file;
    file.load_from(two.run.out_dir + "/ckpt-00000003.optimizer-rank-0000" + std::to_string(r) + "-of-00002.pt");
    file.read("optimizer", saved[r]);
  }
  GptConfig config = gpt_preset("tiny");
  config.n_layer = 2, config.n_head = 2, config.n_embd = 64, config.max_positions = 64, config.vocab_size = 256;
  Gpt model(config);
  model->to(torch::kDouble);
  const auto groups = adamw_groups(*model, AdamWSettings{});
  std::size_t quantized = 0;
  for (const int world : {3, 1}) {
    for (int rank = 0; rank < world; ++rank) {
      auto resliced = reshard_optimizer_state(saved, groups, rank, world, torch::kCPU, "test");
      for (std::size_t g = 0; g < groups.size(); ++g) {
        for (std::size_t i = 0; i < groups[g].params.size(); ++i) {
          const std::int64_t n = groups[g].params[i].numel();
          const std::int64_t per_rank = ZeroSharding::elements_per_rank(n, world);
          const std::int64_t start = std::min(n, rank * per_rank), length = std::min(n, start + per_rank) - start;
          for (const std::string kind : {"codes_avg", "codes_avg_sq", "absmax_avg", "absmax_avg_sq"}) {
            const std::string key = kind + "." + std::to_string(g) + "." + std::to_string(i);
            torch::Tensor old0, old1, now;
            if (!saved[0].try_read(key, old0, /*is_buffer=*/true)) continue;  // a 32-bit tensor (under 4096)
            ASSERT_TRUE(saved[1].try_read(key, old1, /*is_buffer=*/true)) << key;
            ASSERT_TRUE(resliced.try_read(key, now, /*is_buffer=*/true)) << key;
            const auto whole = torch::cat({old0.reshape({-1}), old1.reshape({-1})});
            const bool per_block = kind.rfind("absmax", 0) == 0;
            const std::int64_t block = ZeroSharding::kAlignment;
            const auto expected = per_block ? whole.narrow(0, start / block, (length + block - 1) / block)
                                            : whole.narrow(0, start, length);
            EXPECT_EQ(now.scalar_type(), whole.scalar_type()) << key;
            EXPECT_TRUE(torch::equal(now.reshape({-1}), expected))
                << key << " of rank " << rank << " of " << world << " is not the old pieces' slice";
            ++quantized;
          }
        }
      }
    }
  }
  EXPECT_GT(quantized, 0u) << "no 8-bit state was compared";

  // 2 ranks -> 3 ranks: the 8-bit state is re-sliced exactly; only the gradients' summation order differs.
  auto three = run_options("three", 3, 6);
  three.run.steps = 6;
  ASSERT_EQ(launch(three, 3, "--use-8bit-optimizer --resume " + middle), 0) << log_of(three);
  EXPECT_LT(max_relative_difference(final_parameters(three), final_parameters(two)), 1e-5);
  // And to one rank, whose optimizer is not sharded: the whole state is reassembled.
  auto one = run_options("one-from-two", 1, 6);
  one.run.steps = 6;
  ASSERT_EQ(launch(one, 1, "--use-8bit-optimizer --resume " + middle), 0) << log_of(one);
  EXPECT_LT(max_relative_difference(final_parameters(one), final_parameters(two)), 1e-5);
  // A 1-rank fp32 checkpoint continues on 2 ranks with ZeRO.
  auto fp32_one = run_options("fp32-one", 1, 6);
  fp32_one.run.steps = 6;
  ASSERT_EQ(launch(fp32_one, 1, "--checkpoint-interval 3"), 0) << log_of(fp32_one);
  auto fp32_two = run_options("fp32-two", 2, 6);
  fp32_two.run.steps = 6;
  ASSERT_EQ(launch(fp32_two, 2, "--resume " + fp32_one.run.out_dir + "/ckpt-00000003.pt"), 0) << log_of(fp32_two);
  EXPECT_LT(max_relative_difference(final_parameters(fp32_two), final_parameters(fp32_one)), 1e-5);
}

TEST_F(DistributedTest, EightRanksMatchOneRankAndRecoverFromAnOutOfMemoryOnOneRank) {
  // Issue 7's simulated scale-out: 8 ranks on the CPU, ZeRO-1 with 8-bit state, an out-of-memory
  // on rank 5 at step 2.
  const auto single = run_options("one8", 1, 16);
  ASSERT_EQ(launch(single, 1, "--use-8bit-optimizer"), 0) << log_of(single);
  const auto eight = run_options("eight", 8, 16);
  ASSERT_EQ(launch(eight, 8, "--use-8bit-optimizer", "AIOS_FAULT_OOM_AT_STEP=2 AIOS_FAULT_RANK=5"), 0) << log_of(eight);
  EXPECT_NE(log_of(eight).find("rank 7: step 2: out of memory on rank(s) 5"), std::string::npos) << log_of(eight);
  EXPECT_EQ(records_of(eight.run.log_file, "event").size(), 1u);
  EXPECT_LT(max_relative_difference(final_parameters(eight), final_parameters(single)), 1e-5);
}

// A job with a faulty rank: it must end non-zero, and within 60 s (no hang).
void expect_ends_promptly(const std::function<int()>& launch_job) {
  const auto start = std::chrono::steady_clock::now();
  const int status = launch_job();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(status, 0);
  EXPECT_LT(seconds, 60.0);
}

// A stop signal (here SIGUSR1, Slurm's usual warning, or SIGTERM) reaching one rank only: every
// rank finishes the same step, the checkpoint of that step is written (ZeRO shards included), the
// job exits 128 + the signal, and resuming gives the parameters of an uninterrupted run.
TEST_F(DistributedTest, AStopSignalOnOneRankStopsEveryRankAtOneStepWithACheckpointThatResumes) {
  for (const int world : {1, 2, 3}) {
    const auto whole = run_options("whole" + std::to_string(world), world, 6);
    ASSERT_EQ(launch(whole, world, "--use-8bit-optimizer"), 0) << log_of(whole);
    auto stopped = run_options("stopped" + std::to_string(world), world, 6);
    const std::string rank = world > 1 ? " AIOS_FAULT_RANK=1" : "";
    const std::string signal = world == 2 ? "USR1" : "TERM";
    const int status = launch(stopped, world, "--use-8bit-optimizer",
                              "AIOS_FAULT_SIGNAL_AT_STEP=2 AIOS_FAULT_SIGNAL=" + signal + rank);
    EXPECT_EQ(status, signal == "USR1" ? 128 + 10 : 128 + 15) << log_of(stopped);
    EXPECT_NE(log_of(stopped).find("stopped by SIG" + signal + " after step 2 of 4"), std::string::npos)
        << log_of(stopped);
    EXPECT_EQ(testing::read_file(stopped.run.out_dir + "/latest"), "ckpt-00000002.pt\n");
    const auto events = records_of(stopped.run.log_file, "event");
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back()["event"], "stopped");
    EXPECT_EQ(records_of(stopped.run.log_file, "step").size(), 2u) << "no step after the one the signal came in";
    ASSERT_EQ(launch(stopped, world, "--use-8bit-optimizer --resume latest"), 0) << log_of(stopped);
    EXPECT_EQ(max_relative_difference(final_parameters(stopped), final_parameters(whole)), 0.0) << world << " ranks";
  }
}

// Signals from outside, as a user sends them: Ctrl-C once stops after the step with a checkpoint
// (exit 130); Ctrl-C twice in a row ends the process at once, writing nothing.
TEST_F(DistributedTest, CtrlCStopsWithACheckpointAndCtrlCTwiceQuitsAtOnce) {
  auto o = run_options("ctrl-c", 1, 4);
  o.run.steps = 1000000;  // never ends on its own
  o.optimizer.warmup_steps = 1;
  // Starts the run in the background, waits for its first step record, then runs `kills`.
  auto run_until_signalled = [&](const std::string& kills) {
    const std::string script = o.run.out_dir + ".sh";
    // set -m: a background job of a script would otherwise start with SIGINT ignored.
    testing::write_file(script, "set -m\n" + std::string(AIOS_BINARY) + " train --dataset-file " + o.data.dataset_file +
                                    " --model tiny --n-layer 2 --n-head 2 --n-embd 32 --seq-len 64 --window-size 16" +
                                    " --steps 1000000 --eval-batches 0 --no-amp --no-gradient-checkpointing" +
                                    " --device cpu --out-dir " + o.run.out_dir + " --log-file " + o.run.log_file +
                                    " > " + o.run.out_dir + ".log 2>&1 &\npid=$!\n" +
                                    "for i in $(seq 600); do grep -q '\"step\"' " + o.run.log_file +
                                    " 2>/dev/null && break; sleep 0.1; done\n" + kills + "\nwait $pid\n");
    const int status = std::system(("bash " + script).c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(run_until_signalled("kill -INT $pid"), 130) << log_of(o);
  EXPECT_TRUE(is_regular_file(o.run.out_dir + "/latest")) << log_of(o);
  EXPECT_NE(log_of(o).find("stopped by SIGINT"), std::string::npos) << log_of(o);
  remove_tree(o.run.out_dir);
  EXPECT_EQ(run_until_signalled("kill -INT $pid; kill -INT $pid"), 130) << log_of(o);
  EXPECT_FALSE(is_regular_file(o.run.out_dir + "/latest")) << "a second Ctrl-C writes no checkpoint: " << log_of(o);
}

// fp16 with an inf gradient on one rank only (under ZeRO-1 each rank unscales only its own shard,
// so only that rank sees it): every rank skips the same step and halves its loss scale, and the
// scales stay equal on every rank at every step.
TEST_F(DistributedTest, Fp16InfOnOneRankSkipsTheStepEverywhereAndKeepsTheScalesEqual) {
  for (const int world : {2, 3}) {
    for (const std::string sharding : {"--shard-optimizer", "--no-shard-optimizer"}) {
      auto o = run_options("fp16-" + std::to_string(world) + sharding, world, 6);
      o.model.dtype = ModelDtype::kFloat32;
      ASSERT_EQ(
          launch(o, world, sharding + " --amp --amp-dtype fp16", "AIOS_FAULT_INF_GRAD_AT_STEP=2 AIOS_FAULT_RANK=1"), 0)
          << log_of(o);
      const auto steps = records_of(o.run.log_file, "step");
      ASSERT_EQ(steps.size(), 4u) << log_of(o);
      for (const auto& record : steps) {
        const std::string what = std::to_string(world) + " ranks " + sharding + ": " + record.dump();
        EXPECT_EQ(record["skipped"], record["step"] == 2) << what;
        const auto scales = record["loss_scale_per_rank"].get<std::vector<double>>();
        ASSERT_EQ(scales.size(), static_cast<std::size_t>(world)) << what;
        for (const double scale : scales) EXPECT_EQ(scale, record["step"] <= 2 ? 65536.0 : 32768.0) << what;
      }
    }
  }
}

// A checkpoint that cannot be written (here a file-size limit, as a full disk would do) ends the run
// with one line naming the file; its partial file is removed and the previous checkpoint and
// `latest` stay, so the run resumes from them. A log that cannot be written (a reader that went
// away) ends the run too, after a checkpoint of the last good step.
TEST_F(DistributedTest, AFailedWriteKeepsTheLastGoodCheckpoint) {
  auto o = run_options("full", 1, 4);
  o.run.steps = 2;
  ASSERT_EQ(launch(o, 1), 0) << log_of(o);
  const std::string args = std::string(AIOS_BINARY) + " train --dataset-file " + o.data.dataset_file +
                           " --model tiny --n-layer 2 --n-head 2 --n-embd 64 --seq-len 64 --window-size 16" +
                           " --batch-size 4 --warmup-steps 1 --eval-batches 0 --no-amp --no-gradient-checkpointing" +
                           " --model-dtype float64 --device cpu --out-dir " + o.run.out_dir;
  testing::write_file(dir_ / "full.sh", "ulimit -f 64\ntrap '' XFSZ\n" + args +
                                            " --steps 4 --checkpoint-interval 1 --resume latest > " +
                                            (dir_ / "full.log") + " 2>&1\n");
  const int status = std::system(("bash " + (dir_ / "full.sh")).c_str());
  const std::string log = testing::read_file(dir_ / "full.log");
  EXPECT_EQ(WEXITSTATUS(status), 1) << log;
  EXPECT_NE(log.find("ckpt-00000003.pt: could not be written"), std::string::npos) << log;
  EXPECT_NE(log.find("the previous checkpoint and 'latest' are intact"), std::string::npos) << log;
  EXPECT_EQ(log.find("terminate called"), std::string::npos) << log;
  EXPECT_EQ(testing::read_file(o.run.out_dir + "/latest"), "ckpt-00000002.pt\n");
  for (const auto& name : list_directory(o.run.out_dir)) {
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << "partial file left: " << name;
  }
  o.run.steps = 4;
  ASSERT_EQ(launch(o, 1, "--resume latest"), 0) << log_of(o);

  testing::write_file(dir_ / "pipe.sh",
                      "trap '' PIPE\n" + args + " --steps 100000 --overwrite --log-file /dev/stdout 2> " +
                          (dir_ / "pipe.log") + " | head -c 3000 > /dev/null\nexit ${PIPESTATUS[0]}\n");
  const int piped = std::system(("bash " + (dir_ / "pipe.sh")).c_str());
  const std::string pipe_log = testing::read_file(dir_ / "pipe.log");
  EXPECT_EQ(WEXITSTATUS(piped), 1) << pipe_log;
  const auto at = pipe_log.find("/dev/stdout: could not be written (disk full?); a checkpoint of step ");
  ASSERT_NE(at, std::string::npos) << pipe_log;
  const std::string latest = testing::read_file(o.run.out_dir + "/latest");
  EXPECT_NE(pipe_log.find(latest.substr(0, latest.size() - 1), at), std::string::npos) << pipe_log << latest;
}

// Validation reads the same windows whatever the number of ranks and the micro-batch: the val
// loss of 1, 2 and 3 ranks, and of a run whose micro-batch shrank after an out-of-memory, agree.
TEST_F(DistributedTest, ValidationLossIsTheSameForAnyWorldSizeAndAfterAShrink) {
  std::vector<double> val_losses;
  for (const int world : {1, 2, 3}) {
    auto o = run_options("val" + std::to_string(world), world, 6);
    o.run.eval_batches = 2;
    ASSERT_EQ(launch(o, world), 0) << log_of(o);
    val_losses.push_back(records_of(o.run.log_file, "step").back()["val_loss"].get<double>());
  }
  auto shrunk = run_options("val-shrunk", 2, 6);
  shrunk.run.eval_batches = 2;
  ASSERT_EQ(launch(shrunk, 2, "", "AIOS_FAULT_OOM_AT_STEP=2 AIOS_FAULT_RANK=1"), 0) << log_of(shrunk);
  ASSERT_EQ(records_of(shrunk.run.log_file, "event").size(), 1u) << "the micro-batch shrank";
  val_losses.push_back(records_of(shrunk.run.log_file, "step").back()["val_loss"].get<double>());
  for (std::size_t i = 1; i < val_losses.size(); ++i) {
    EXPECT_NEAR(val_losses[i], val_losses[0], 1e-9 * val_losses[0]) << "run " << i;
  }
}

// A truncated ZeRO optimizer shard is named in one line when a resume reads it, on the same and on
// another world size.
TEST_F(DistributedTest, ATruncatedOptimizerShardIsNamed) {
  auto o = run_options("truncated", 2, 6);
  o.run.steps = 2;
  ASSERT_EQ(launch(o, 2), 0) << log_of(o);
  const std::string shard = o.run.out_dir + "/ckpt-00000002.optimizer-rank-00001-of-00002.pt";
  ASSERT_TRUE(is_regular_file(shard));
  const std::string bytes = testing::read_file(shard);
  testing::write_file(shard, bytes.substr(0, bytes.size() / 2));
  o.run.steps = 3;
  // With its checksum beside it the size gives it away; without (a checkpoint of an older aios),
  // LibTorch's zip reader fails, and that too is one line naming the file.
  for (const bool checksum : {true, false}) {
    if (!checksum) ::unlink((shard + ".crc32").c_str());
    const std::string expected = checksum ? ": is " : ": cannot be read as an aios checkpoint file (damaged, truncated";
    for (const int world : {2, 1}) {
      EXPECT_NE(launch(o, world, "--resume latest"), 0) << log_of(o);
      const std::string log = log_of(o);
      EXPECT_NE(log.find(shard + expected), std::string::npos) << world << " ranks: " << log;
      EXPECT_EQ(log.find("frame #"), std::string::npos) << log;
    }
  }
}

TEST_F(DistributedTest, ARankThatDiesEndsTheJobWithoutAHang) {
  const auto o = run_options("dies", 3, 6);
  expect_ends_promptly([&] { return launch(o, 3, "", "AIOS_FAULT_EXIT_AT_STEP=2 AIOS_FAULT_RANK=1"); });
  EXPECT_NE(log_of(o).find("rank 1: injected exit in step 2"), std::string::npos) << log_of(o);
}

TEST_F(DistributedTest, ARankThatHangsEndsTheJobAfterTheHangTimeout) {
  // Rank 1 stops making progress without dying; its peers wait inside a collective. Without the
  // watchdog this test would never end (ctest's timeout would kill it).
  const auto o = run_options("hangs", 2, 4);
  expect_ends_promptly([&] {
    return launch(o, 2, "--hang-timeout 3 --checkpoint-interval 1", "AIOS_FAULT_HANG_AT_STEP=2 AIOS_FAULT_RANK=1");
  });
  const auto log = log_of(o);
  EXPECT_NE(log.find("rank 1: injected hang in step 2"), std::string::npos) << log;
  EXPECT_NE(log.find("no progress for"), std::string::npos) << log;
  // Whichever watchdog speaks first names the step: the hung rank's as well as its waiting peer's
  // (the injected hang comes after the step's first mark, as a real hang would).
  EXPECT_EQ(log.find("in step 1 ("), std::string::npos) << log;
  EXPECT_NE(log.find("in step 2 (forward/backward"), std::string::npos) << log;
  // Step 1's checkpoint stays the latest.
  EXPECT_NE(testing::read_file(o.run.out_dir + "/latest").find("00000001"), std::string::npos);

  // A rank stuck in start-up (before the first broadcast) is caught the same way.
  const auto early = run_options("hangs-early", 2, 4);
  expect_ends_promptly(
      [&] { return launch(early, 2, "--hang-timeout 3", "AIOS_FAULT_HANG_AT_STEP=0 AIOS_FAULT_RANK=1"); });
  EXPECT_NE(log_of(early).find("in step 0 (start-up: broadcasting rank 0's weights)"), std::string::npos)
      << log_of(early);
}

}  // namespace
}  // namespace aios
