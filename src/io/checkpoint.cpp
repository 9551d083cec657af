#include "io/checkpoint.h"

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <cstdio>

#include "base/error.h"
#include "base/rng_state.h"
#include "base/files.h"

namespace aios {
namespace {

constexpr std::int64_t kCheckpointFormat = 2;  // 2: optimizer kind and loss scaler

std::string checkpoint_name(std::int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "ckpt-%08lld.pt", static_cast<long long>(step));
  return name;
}

}  // namespace

std::string resolve_checkpoint_path(const std::string& path, const std::string& run_directory) {
  if (path != "latest") {
    if (!is_regular_file(path)) throw Error("--resume", "checkpoint '" + path + "' does not exist",
                                            "a ckpt-*.pt file or 'latest'");
    return path;
  }
  const std::string pointer = join_path(run_directory, "latest");
  if (!is_regular_file(pointer)) {
    throw Error("--resume", "'latest' found no checkpoint in " + run_directory, "--out-dir of an earlier run");
  }
  std::string name = read_text_file(pointer);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return join_path(run_directory, name);
}

std::string save_checkpoint(const std::string& run_directory, const torch::nn::Module& model,
                            const Optimizer& optimizer, const LossScaler& scaler, const TrainProgress& progress,
                            const std::string& model_signature) {
  make_directories(run_directory);
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive, scaler_archive;
  archive.write("format", c10::IValue(kCheckpointFormat));
  archive.write("model_signature", c10::IValue(model_signature));
  archive.write("step", c10::IValue(progress.step));
  archive.write("data_cursor", c10::IValue(static_cast<std::int64_t>(progress.data_cursor)));
  archive.write("tokens_seen", c10::IValue(progress.tokens_seen));
  model.save(model_archive);
  archive.write("model", model_archive);
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("optimizer_kind", c10::IValue(optimizer.kind()));
  scaler.save(scaler_archive);
  archive.write("loss_scaler", scaler_archive);
  archive.write("rng_cpu", get_rng_state(at::Device(at::kCPU)));
  const auto parameters = model.parameters();
  if (!parameters.empty() && parameters.front().is_cuda()) {
    archive.write("rng_cuda", get_rng_state(parameters.front().device()));
  }
  const std::string name = checkpoint_name(progress.step);
  const std::string final_path = join_path(run_directory, name);
  const std::string temporary = final_path + ".tmp-" + std::to_string(::getpid());
  archive.save_to(temporary);
  rename_path(temporary, final_path);
  write_file_atomically(join_path(run_directory, "latest"), name + "\n");
  return final_path;
}

TrainProgress load_checkpoint(const std::string& path, const std::string& run_directory,
                              torch::nn::Module& model, Optimizer& optimizer, LossScaler& scaler,
                              const std::string& model_signature, const torch::Device& device) {
  const std::string resolved = resolve_checkpoint_path(path, run_directory);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(resolved, device);
  } catch (const c10::Error& e) {
    throw Error(resolved, "cannot be read as an aios checkpoint (damaged or another format)");
  }
  c10::IValue value;
  archive.read("format", value);
  if (value.toInt() != kCheckpointFormat) {
    throw Error(resolved, "checkpoint format " + std::to_string(value.toInt()) + " is not supported",
                "format " + std::to_string(kCheckpointFormat));
  }
  archive.read("model_signature", value);
  if (value.toStringRef() != model_signature) {
    throw Error(resolved, "was written for a model of " + value.toStringRef() + ", but this run builds " +
                              model_signature, "the same --model and shape options as the run that wrote it");
  }
  TrainProgress progress;
  archive.read("step", value);
  progress.step = value.toInt();
  archive.read("data_cursor", value);
  progress.data_cursor = static_cast<std::uint64_t>(value.toInt());
  archive.read("tokens_seen", value);
  progress.tokens_seen = value.toInt();
  archive.read("optimizer_kind", value);
  if (value.toStringRef() != optimizer.kind()) {
    throw Error(resolved, "holds " + value.toStringRef() + " optimizer state, but this run uses " + optimizer.kind(),
                value.toStringRef() == "adamw-8bit" ? "--use-8bit-optimizer, as the run that wrote it"
                                                    : "no --use-8bit-optimizer, as the run that wrote it");
  }
  torch::serialize::InputArchive model_archive, optimizer_archive, scaler_archive;
  archive.read("model", model_archive);
  model.load(model_archive);
  archive.read("optimizer", optimizer_archive);
  optimizer.load(optimizer_archive);
  archive.read("loss_scaler", scaler_archive);
  scaler.load(scaler_archive);
  at::Tensor state;
  archive.read("rng_cpu", state);
  set_rng_state(at::Device(at::kCPU), state.cpu());
  if (device.is_cuda() && archive.try_read("rng_cuda", state)) set_rng_state(device, state.cpu());
  return progress;
}

}  // namespace aios
