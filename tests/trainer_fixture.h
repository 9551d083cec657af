// The trainer test fixture: a small byte-level shard set and options for a 2-layer model that
// trains in well under a second per run on the CPU.
#pragma once

#include <gtest/gtest.h>
#include <torch/serialize/input-archive.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/prepare.h"
#include "model/gpt.h"
#include "test_support.h"
#include "train/trainer.h"

namespace aios {

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_file(dir_ / "corpus.txt", testing::sample_text(60'000, 3));
    PrepareOptions prepare;
    prepare.inputs = {dir_ / "corpus.txt"};
    prepare.output = dir_ / "set";
    prepare.val_fraction = 0.05;
    prepare_shards(prepare);
  }

  TrainOptions options(const std::string& run) const {
    TrainOptions o;
    o.data.dataset_file = dir_ / "set";
    o.model.preset = "tiny";
    o.model.n_layer = 2, o.model.n_head = 2, o.model.n_embd = 32, o.model.max_positions = 64;
    o.data.window_size = 16;
    o.data.batch_size = 4;
    o.run.steps = 4;
    o.optimizer.warmup_steps = 1;
    o.optimizer.lr = 1e-2, o.optimizer.min_lr = 1e-3;
    o.run.eval_batches = 0;
    o.run.device = "cpu";
    o.memory.amp = false, o.memory.gradient_checkpointing = false;
    o.run.out_dir = dir_ / run;
    o.run.fault_injection = true;  // the tests inject faults through AIOS_FAULT_* variables
    return o;
  }

  std::vector<torch::Tensor> parameters_of(const std::string& checkpoint, const TrainOptions& o) const {
    GptConfig c = gpt_preset(o.model.preset);
    if (o.model.n_layer > 0) c.n_layer = o.model.n_layer;
    if (o.model.n_head > 0) c.n_head = o.model.n_head;
    if (o.model.n_embd > 0) c.n_embd = o.model.n_embd;
    c.max_positions = o.model.max_positions, c.vocab_size = 256;
    c.position = o.model.position;
    Gpt model(c);
    if (o.model.dtype == ModelDtype::kFloat64) model->to(torch::kDouble);
    torch::serialize::InputArchive archive, model_archive;
    archive.load_from(checkpoint);
    archive.read("model", model_archive);
    model->load(model_archive);
    return model->parameters();
  }

  // The JSONL records of one type ("config", "step", "event") in order.
  static std::vector<nlohmann::json> records_of(const std::string& log_file, const std::string& type) {
    std::vector<nlohmann::json> records;
    std::ifstream log(log_file);
    std::string line;
    while (std::getline(log, line)) {
      auto record = nlohmann::json::parse(line);
      if (record["type"] == type) records.push_back(std::move(record));
    }
    return records;
  }

  // Mean loss of steps first..last (1-based, inclusive) of a run's JSONL log.
  static double mean_loss(const std::string& log_file, std::size_t first, std::size_t last) {
    const auto steps = records_of(log_file, "step");
    double sum = 0;
    for (std::size_t i = first - 1; i < last; ++i) sum += steps.at(i)["loss"].get<double>();
    return sum / static_cast<double>(last - first + 1);
  }

  // A low-precision run against its fp32 reference: the reference learned (mean loss below
  // `learned_below`) and the candidate's mean loss is within `bound` (relative) of it. Prints both.
  static void expect_mean_loss_close(const char* what, double reference, double candidate, double learned_below,
                                     double bound) {
    std::printf("%s vs fp32: %.5f vs %.5f (%.3f%%)\n", what, candidate, reference,
                100 * std::abs(candidate - reference) / reference);
    EXPECT_LT(reference, learned_below) << "fp32 run did not learn";
    EXPECT_LT(std::abs(candidate - reference) / reference, bound)
        << "fp32 " << reference << " " << what << " " << candidate;
  }

  // Largest |a - b| / (|b| + 1e-3) over all parameters: a relative difference that tolerates zeros.
  static double max_relative_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      worst = std::max(worst, ((a[i] - b[i]).abs() / (b[i].abs() + 1e-3)).max().item<double>());
    }
    return worst;
  }

  testing::ScratchDir dir_;
};

}  // namespace aios
