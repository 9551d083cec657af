// `aios plan [train's options] [--ranks N] [--gpu-memory 80GiB [--fit]] [--json]`: the peak GPU
// memory per rank that `aios train` with the same options would reach, item by item, and with
// --fit the micro-batch and the cheapest flags that fit a GPU (plan/memory_plan.h).
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>

#include "base/error.h"
#include "base/files.h"
#include "cli/app.h"
#include "cli/train_command.h"
#include "data/manifest.h"
#include "io/metrics_log.h"
#include "model/hf_gpt2.h"
#include "plan/memory_plan.h"
#include "train/setup.h"

namespace aios::cli {
namespace {

using nlohmann::json;

struct PlanOptions {
  TrainOptions train;
  std::int64_t ranks = 1;
  std::string gpu_memory;
  bool fit = false;
  bool json_output = false;
};

// "80GiB", "80 GB", "141G", "24576MiB": binary and decimal units alike.
double parse_memory(const std::string& text) {
  static const std::regex pattern(R"(\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT])(i?)B?\s*)", std::regex::icase);
  std::smatch m;
  if (!std::regex_match(text, m, pattern)) {
    throw Error("--gpu-memory", "'" + text + "' is not a size", "a number and a unit: 80GiB, 40GB, 24576MiB");
  }
  const double value = std::stod(m[1]);
  const std::string unit = m[2];
  const int power = std::string("KMGT").find(static_cast<char>(std::toupper(unit[0]))) + 1;
  const double base = m[3].length() > 0 ? 1024.0 : 1000.0;
  return value * std::pow(base, power);
}

// The model's shape as `train` would build it; without data, the vocabulary is --vocab-size or
// GPT-2's (the presets').
GptConfig plan_model_config(const TrainOptions& o, bool& vocabulary_assumed) {
  Manifest data;
  vocabulary_assumed = false;
  if (!o.data.dataset_file.empty()) {
    const std::string path =
        is_directory(o.data.dataset_file) ? join_path(o.data.dataset_file, kManifestFileName) : o.data.dataset_file;
    data = read_manifest(path);
  } else if (o.model.vocab_size == 0 && o.model.init_from.empty()) {
    data.tokenizer.vocab_size = gpt_preset(o.model.preset).vocab_size;
    vocabulary_assumed = true;
  }
  return model_config(o, data);
}

json plan_json(const MemoryPlan& plan) {
  json moments = json::array();
  for (const auto& moment : plan.moments) {
    json items = json::array();
    for (const auto& item : moment.items)
      items.push_back({{"name", item.name}, {"bytes", item.bytes}, {"detail", item.detail}});
    moments.push_back({{"name", moment.name}, {"bytes", moment.bytes()}, {"items", items}});
  }
  return {{"peak_bytes", plan.peak_bytes},
          {"reserved_bytes", plan.reserved_bytes},
          {"peak_moment", plan.moments[plan.peak_moment].name},
          {"attention", plan.attention},
          {"micro_batch", plan.micro_batch},
          {"accumulation", plan.accumulation},
          {"moments", moments}};
}

std::string techniques_of(const TrainOptions& o) {
  std::string text = o.memory.amp ? "AMP (16-bit matmuls)" : "no AMP";
  if (o.memory.gradient_checkpointing) text += ", checkpointing";
  if (o.memory.chunked_loss) text += ", chunked loss";
  text += o.optimizer.use_8bit_optimizer ? ", 8-bit AdamW" : ", 32-bit AdamW";
  if (o.memory.chunked_training) text += ", chunks of " + std::to_string(o.memory.chunk_size) + " tokens";
  return text;
}

void print_plan(const MemoryPlan& plan) {
  const auto& peak = plan.moments[plan.peak_moment];
  std::printf("peak at the %s:\n", peak.name.c_str());
  for (const auto& item : peak.items) {
    if (item.bytes <= 0) continue;
    std::printf("  %-44s %10s   %s\n", item.name.c_str(), format_bytes(item.bytes).c_str(), item.detail.c_str());
  }
  std::printf("  %-44s %10s\n", "total in tensors (PyTorch's peak allocated)", format_bytes(plan.peak_bytes).c_str());
  std::printf("  %-44s %10s\n", "with the allocator's cached blocks (reserved)",
              format_bytes(plan.reserved_bytes).c_str());
  std::printf("  %-44s %10s\n", "on the GPU with the CUDA context",
              format_bytes(plan.reserved_bytes + kCudaContextBytes).c_str());
  std::string others;
  for (std::size_t i = 0; i < plan.moments.size(); ++i) {
    if (i == plan.peak_moment) continue;
    others += (others.empty() ? "" : "; ") + plan.moments[i].name + " " + format_bytes(plan.moments[i].bytes());
  }
  std::printf("other moments: %s\n", others.c_str());
}

int run_plan(PlanOptions& p) {
  TrainOptions& o = p.train;
  TrainOptions checked = o;  // train's cross-option checks; a plan needs no data
  if (checked.data.dataset_file.empty()) checked.data.dataset_file = "(none)";
  validate(checked);
  if (p.fit && p.gpu_memory.empty()) throw Error("--fit", "needs the GPU's memory", "--gpu-memory 80GiB");
  const double budget = p.gpu_memory.empty() ? 0 : parse_memory(p.gpu_memory);
  bool vocabulary_assumed = false;
  const GptConfig config = plan_model_config(o, vocabulary_assumed);
  const PlanTarget target{o.run.device != "cpu", p.ranks};
  const MemoryPlan plan = plan_memory(config, o, target);
  std::vector<FitProposal> proposals;
  if (p.fit) proposals = fit_memory(config, o, target, budget);

  if (p.json_output) {
    json out = plan_json(plan);
    out["model"] = config.describe();
    out["parameters"] = config.parameter_count();
    if (budget > 0) out["gpu_memory_bytes"] = budget;
    json fits = json::array();
    for (const auto& f : proposals) fits.push_back({{"what", f.what}, {"flags", f.flags}, {"plan", plan_json(f.plan)}});
    if (p.fit) out["fit"] = fits;
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("aios plan: %s (%.1fM parameters)%s\n", config.describe().c_str(),
              static_cast<double>(config.parameter_count()) / 1e6,
              vocabulary_assumed ? ", GPT-2's vocabulary (no --dataset-file or --vocab-size)" : "");
  std::printf("  micro-batch %lld x window %lld, %s, %lld rank(s), %s, attention %s\n",
              static_cast<long long>(o.data.batch_size), static_cast<long long>(o.data.window_size),
              techniques_of(o).c_str(), static_cast<long long>(p.ranks), target.cuda ? "CUDA" : "CPU",
              plan.attention.c_str());
  print_plan(plan);
  if (budget > 0) {
    const bool fits = plan.reserved_bytes + kCudaContextBytes <= budget;
    std::printf("%s %s of GPU memory\n", fits ? "fits in" : "does not fit in", format_bytes(budget).c_str());
  }
  if (p.fit) {
    if (proposals.empty()) {
      std::printf("nothing fits: even a micro-batch of 1 with every technique needs more than %s\n",
                  format_bytes(budget).c_str());
      return 1;
    }
    for (const auto& f : proposals) {
      std::string flags;
      for (const auto& flag : f.flags) flags += " " + flag;
      std::printf("fit, %s:%s -> peak %s (reserved %s)\n", f.what.c_str(), flags.c_str(),
                  format_bytes(f.plan.peak_bytes).c_str(), format_bytes(f.plan.reserved_bytes).c_str());
    }
  }
  return 0;
}

}  // namespace

CommandAction add_plan_command(CLI::App& app) {
  auto p = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Predict the peak GPU memory per rank of a training run (the same options as train), item by item");
  enable_config_file(*cmd);
  bind_train_options(*cmd, p->train);
  cmd->add_option("--ranks", p->ranks, "Ranks the run would use (ZeRO-1 shards the optimizer state over them)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20))
      ->group("Plan");
  cmd->add_option("--gpu-memory", p->gpu_memory, "The GPU's memory, e.g. 80GiB: say whether the run fits")
      ->group("Plan");
  cmd->add_flag("--fit", p->fit, "With --gpu-memory: the largest micro-batch and the cheapest flags that fit")
      ->group("Plan");
  cmd->add_flag("--json", p->json_output, "Print the plan as JSON")->group("Plan");
  return [p] { return run_plan(*p); };
}

}  // namespace aios::cli
