#include "io/checkpoint.h"

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <regex>
#include <sstream>

#include "base/checksum.h"
#include "base/error.h"
#include "base/files.h"
#include "base/rng_state.h"
#include "io/metrics_log.h"
#include "io/zero_reshard.h"

namespace aios {
namespace {

constexpr std::int64_t kCheckpointFormat = 3;  // 3: world size and optimizer shard files

std::string checkpoint_name(std::int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "ckpt-%08lld.pt", static_cast<long long>(step));
  return name;
}

// The shard file of `rank` next to main checkpoint `main_path` (".pt" replaced).
std::string shard_path(const std::string& main_path, int rank, int world) {
  char suffix[64];
  std::snprintf(suffix, sizeof(suffix), ".optimizer-rank-%05d-of-%05d.pt", rank, world);
  return main_path.substr(0, main_path.size() - 3) + suffix;
}

// A write that fails (a full disk, a file-size limit, an I/O error) removes its partial file and
// is reported as one line naming the file; the previous checkpoint and `latest` are untouched.
// The archive is streamed through a function that never reports a failure to LibTorch's stream
// writer: that writer, told of a short write, throws again from its destructor and ends the
// process (std::terminate). The failure is kept here and reported once the archive is done.
void save_atomically(torch::serialize::OutputArchive& archive, const std::string& path) {
  const std::string temporary = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (file == nullptr) {
    throw Error(path, std::string("cannot be created: ") + std::strerror(errno), "a writable --out-dir");
  }
  int write_error = 0;
  Crc32 crc;
  std::int64_t bytes = 0;
  archive.save_to([&](const void* data, std::size_t size) -> std::size_t {
    if (write_error == 0 && size > 0 && std::fwrite(data, 1, size, file) != size) write_error = errno ? errno : EIO;
    crc.update(data, size);
    bytes += static_cast<std::int64_t>(size);
    return size;
  });
  if (std::fflush(file) != 0 && write_error == 0) write_error = errno;
  if (write_error == 0 && ::fsync(::fileno(file)) != 0) write_error = errno;  // on disk before `latest` names it
  if (std::fclose(file) != 0 && write_error == 0) write_error = errno;
  if (write_error != 0) {
    ::unlink(temporary.c_str());
    const std::int64_t free = free_bytes(parent_path(path));
    throw Error(path,
                std::string("could not be written (") + std::strerror(write_error) + "); " +
                    (free >= 0 ? format_bytes(static_cast<double>(free)) + " free on its file system; " : "") +
                    "the partial file was removed, the previous checkpoint and 'latest' are intact",
                "free space (a full disk?) or another --out-dir, then --resume latest");
  }
  // The checksum beside the file, in place before the file is: a file under its final name always
  // has the checksum of what was written.
  write_file_atomically(path + ".crc32", crc.hex() + " " + std::to_string(bytes) + "\n");
  rename_path(temporary, path);
}

// Why `path` does not match the checksum written beside it, or "" when it does (or when it has
// none: checkpoints written before checksums were kept).
std::string checksum_mismatch(const std::string& path) {
  const std::string sidecar = path + ".crc32";
  if (!is_regular_file(path)) return "is missing";
  if (!is_regular_file(sidecar)) return "";
  std::istringstream stored(read_text_file(sidecar));
  std::string crc;
  std::int64_t bytes = -1;
  stored >> crc >> bytes;
  const std::int64_t size = file_size(path);
  if (size != bytes) {
    return "is " + std::to_string(size) + " bytes where " + std::to_string(bytes) + " were written (truncated?)";
  }
  const std::string found = crc32_of_file(path);
  if (found != crc) return "does not match its checksum (written " + crc + ", read " + found + "): the file is damaged";
  return "";
}

// Module::load re-points each parameter at the loaded tensor's storage (Tensor::set_). Views made
// earlier (the ZeRO shards) would keep the old storage, so the loaded values are copied back into
// the original storage and the parameters pointed at it again.
void load_model_in_place(torch::nn::Module& model, torch::serialize::InputArchive& archive) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors = model.parameters();
  const auto buffers = model.buffers();
  tensors.insert(tensors.end(), buffers.begin(), buffers.end());
  std::vector<at::Tensor> original_storage;
  for (const auto& t : tensors) original_storage.push_back(t.detach());
  model.load(archive);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    original_storage[i].copy_(tensors[i]);
    tensors[i].set_(original_storage[i]);
  }
}

}  // namespace

std::string resolve_checkpoint_path(const std::string& path, const std::string& run_directory) {
  if (path != "latest") {
    if (!is_regular_file(path))
      throw Error("--resume", "checkpoint '" + path + "' does not exist", "a ckpt-*.pt file or 'latest'");
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
                            const CheckpointMetadata& metadata, Comm& comm, bool sharded_optimizer) {
  const std::string final_path = join_path(run_directory, checkpoint_name(progress.step));
  // Weights holding inf or NaN are never saved: `latest` would name them and every resume would
  // fail. Every rank holds the full weights (after the ZeRO all-gather), so all decide alike.
  {
    std::vector<at::Tensor> finite;
    for (const auto& p : model.parameters()) finite.push_back(at::isfinite(p).all());
    if (!finite.empty() && !at::stack(finite).all().item<bool>()) {  // sync
      throw Error("step " + std::to_string(progress.step),
                  "the weights hold inf or NaN values, so no checkpoint was written; the last one is kept",
                  "a lower --lr or more --warmup-steps, then --resume latest");
    }
  }
  if (comm.rank() == 0) make_directories(run_directory);
  comm.barrier();
  if (sharded_optimizer) {
    torch::serialize::OutputArchive shard;
    shard.write("optimizer_kind", c10::IValue(optimizer.kind()));
    torch::serialize::OutputArchive state;
    optimizer.save(state);
    shard.write("optimizer", state);
    save_atomically(shard, shard_path(final_path, comm.rank(), comm.world()));
  }
  comm.barrier();  // every shard is in place before the main file can name them
  if (comm.rank() == 0) {
    torch::serialize::OutputArchive archive, model_archive, optimizer_archive, scaler_archive;
    archive.write("format", c10::IValue(kCheckpointFormat));
    archive.write("model_signature", c10::IValue(metadata.model.describe()));
    write_metadata(archive, metadata);
    archive.write("step", c10::IValue(progress.step));
    archive.write("data_cursor", c10::IValue(static_cast<std::int64_t>(progress.data_cursor)));
    archive.write("tokens_seen", c10::IValue(progress.tokens_seen));
    archive.write("world", c10::IValue(static_cast<std::int64_t>(comm.world())));
    archive.write("sharded_optimizer", c10::IValue(sharded_optimizer));
    model.save(model_archive);
    archive.write("model", model_archive);
    if (!sharded_optimizer) optimizer.save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("optimizer_kind", c10::IValue(optimizer.kind()));
    scaler.save(scaler_archive);
    archive.write("loss_scaler", scaler_archive);
    archive.write("rng_cpu", get_rng_state(at::Device(at::kCPU)));
    const auto parameters = model.parameters();
    if (!parameters.empty() && parameters.front().is_cuda()) {
      archive.write("rng_cuda", get_rng_state(parameters.front().device()));
    }
    save_atomically(archive, final_path);
    write_file_atomically(join_path(run_directory, "latest"), checkpoint_name(progress.step) + "\n");
  }
  comm.barrier();
  return final_path;
}

// Reads a checkpoint file (the main one or an optimizer shard); a damaged or truncated file is one
// line naming it rather than LibTorch's zip-reader error and its stack frames.
void load_archive(torch::serialize::InputArchive& archive, const std::string& path, const torch::Device& device) {
  if (const std::string mismatch = checksum_mismatch(path); !mismatch.empty()) {
    const std::string intact = newest_intact_checkpoint(parent_path(path));
    throw Error(path, mismatch,
                intact.empty() ? "an intact checkpoint (none is left in " + parent_path(path) + ")"
                               : "--resume " + intact + " (the newest intact checkpoint), or --resume auto");
  }
  try {
    archive.load_from(path, device);
  } catch (const std::exception& e) {
    std::string reason = e.what();
    reason = reason.substr(0, reason.find('\n'));
    throw Error(path,
                "cannot be read as an aios checkpoint file (damaged, truncated or another format: " + reason + ")",
                "an intact checkpoint: --resume with an earlier ckpt-*.pt of that --out-dir");
  }
}

std::vector<std::string> checkpoint_files(const std::string& main_path) {
  std::vector<std::string> files{main_path};
  const std::string directory = parent_path(main_path), stem = file_stem(main_path);
  const std::regex shard(std::regex_replace(stem, std::regex(R"([.])"), R"(\.)") +
                         R"(\.optimizer-rank-\d{5}-of-\d{5}\.pt)");
  for (const auto& name : list_directory(directory.empty() ? "." : directory)) {
    if (std::regex_match(name, shard)) files.push_back(join_path(directory, name));
  }
  return files;
}

std::string checkpoint_damage(const std::string& main_path) {
  for (const auto& file : checkpoint_files(main_path)) {
    if (const std::string mismatch = checksum_mismatch(file); !mismatch.empty()) return file + ": " + mismatch;
  }
  return "";
}

std::string newest_intact_checkpoint(const std::string& run_directory) {
  const std::regex main_file(R"(ckpt-\d{8}\.pt)");
  std::vector<std::string> mains;
  for (const auto& name : list_directory(run_directory.empty() ? "." : run_directory)) {
    if (std::regex_match(name, main_file)) mains.push_back(name);
  }
  std::sort(mains.rbegin(), mains.rend());
  for (const auto& name : mains) {
    if (checkpoint_damage(join_path(run_directory, name)).empty()) return join_path(run_directory, name);
  }
  return "";
}

std::vector<std::string> prune_checkpoints(const std::string& run_directory, std::int64_t keep_last,
                                           std::int64_t keep_every) {
  std::vector<std::string> removed;
  if (keep_last <= 0) return removed;
  const std::regex main_file(R"(ckpt-(\d{8})\.pt(\.crc32)?)"),
      shard_file(R"(ckpt-(\d{8})\.optimizer-rank-\d{5}-of-\d{5}\.pt(\.crc32)?)");
  std::map<std::int64_t, std::vector<std::string>> files_of_step;
  for (const auto& name : list_directory(run_directory)) {
    std::smatch match;
    if (std::regex_match(name, match, main_file) || std::regex_match(name, match, shard_file)) {
      files_of_step[std::stoll(match[1].str())].push_back(name);
    }
  }
  std::string latest;
  if (is_regular_file(join_path(run_directory, "latest"))) latest = read_text_file(join_path(run_directory, "latest"));
  std::int64_t newer = 0;  // checkpoints newer than the one looked at
  for (auto it = files_of_step.rbegin(); it != files_of_step.rend(); ++it, ++newer) {
    const std::int64_t step = it->first;
    const bool named_by_latest = latest.rfind(checkpoint_name(step), 0) == 0;
    if (newer < keep_last || (keep_every > 0 && step % keep_every == 0) || named_by_latest) continue;
    for (const auto& name : it->second) {
      ::unlink(join_path(run_directory, name).c_str());
      removed.push_back(name);
    }
  }
  return removed;
}

TrainProgress load_checkpoint(const std::string& path, const std::string& run_directory, torch::nn::Module& model,
                              Optimizer& optimizer, LossScaler& scaler, const CheckpointMetadata& expected,
                              const torch::Device& device, Comm& comm, bool sharded_optimizer) {
  const std::string model_signature = expected.model.describe();
  const std::string resolved = resolve_checkpoint_path(path, run_directory);
  torch::serialize::InputArchive archive;
  load_archive(archive, resolved, device);
  c10::IValue value;
  archive.read("format", value);
  if (value.toInt() != kCheckpointFormat) {
    throw Error(resolved, "checkpoint format " + std::to_string(value.toInt()) + " is not supported",
                "format " + std::to_string(kCheckpointFormat));
  }
  archive.read("model_signature", value);
  if (value.toStringRef() != model_signature) {
    throw Error(resolved,
                "was written for a model of " + value.toStringRef() + ", but this run builds " + model_signature,
                "the same --model and shape options as the run that wrote it");
  }
  TrainProgress progress;
  if (const auto saved = read_metadata(archive, resolved)) {
    const TokenizerRecord &was = saved->tokenizer, &now = expected.tokenizer;
    if (!was.hash.empty() && !now.hash.empty() && (was.kind != now.kind || was.hash != now.hash)) {
      throw Error(resolved,
                  "was trained on ids of tokenizer " + was.kind + ":" + was.hash + " (dataset " + saved->dataset +
                      "), but this run's dataset " + expected.dataset + " holds ids of " + now.kind + ":" + now.hash,
                  "a dataset prepared with the same tokenizer (aios prepare --tokenizer), or a new --out-dir");
    }
    if (canonical_path(saved->dataset) != canonical_path(expected.dataset)) {
      progress.data_change = "another dataset (" + saved->dataset + " before, " + expected.dataset + " now)";
    }
    if (saved->window != expected.window) {
      progress.data_change += std::string(progress.data_change.empty() ? "" : " and ") + "another window (" +
                              std::to_string(saved->window) + " tokens before, " + std::to_string(expected.window) +
                              " now)";
    }
  }
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
  archive.read("world", value);
  const auto saved_world = value.toInt();
  archive.read("sharded_optimizer", value);
  const bool saved_sharded = value.toBool();
  torch::serialize::InputArchive model_archive, optimizer_archive, scaler_archive;
  archive.read("model", model_archive);
  load_model_in_place(model, model_archive);
  if (sharded_optimizer && saved_sharded && saved_world == comm.world()) {
    const std::string shard = shard_path(resolved, comm.rank(), comm.world());
    if (!is_regular_file(shard)) throw Error(shard, "is missing (this rank's optimizer shard)");
    torch::serialize::InputArchive shard_archive;
    load_archive(shard_archive, shard, device);
    shard_archive.read("optimizer", optimizer_archive);
  } else if (sharded_optimizer || saved_sharded) {
    // Another world size, or sharded <-> whole: every rank reads all saved pieces and keeps its slice.
    std::vector<torch::serialize::InputArchive> saved;
    if (saved_sharded) {
      for (int r = 0; r < static_cast<int>(saved_world); ++r) {
        const std::string shard = shard_path(resolved, r, static_cast<int>(saved_world));
        if (!is_regular_file(shard)) throw Error(shard, "is missing (an optimizer shard of this checkpoint)");
        torch::serialize::InputArchive file, state;
        load_archive(file, shard, at::kCPU);
        file.read("optimizer", state);
        saved.push_back(std::move(state));
      }
    } else {
      saved.emplace_back();
      archive.read("optimizer", saved.back());
    }
    optimizer_archive = reshard_optimizer_state(saved, optimizer.groups(), sharded_optimizer ? comm.rank() : 0,
                                                sharded_optimizer ? comm.world() : 1, device, resolved);
  } else {
    archive.read("optimizer", optimizer_archive);
  }
  optimizer.load(optimizer_archive);
  archive.read("loss_scaler", scaler_archive);
  scaler.load(scaler_archive);
  at::Tensor state;
  archive.read("rng_cpu", state);
  set_rng_state(at::Device(at::kCPU), state.cpu());
  if (device.is_cuda() && archive.try_read("rng_cuda", state)) set_rng_state(device, state.cpu());
  return progress;
}

InferenceCheckpoint open_checkpoint_for_inference(const std::string& path) {
  InferenceCheckpoint checkpoint;
  if (is_directory(path) && !is_regular_file(join_path(path, "latest"))) {
    throw Error(path, "is a directory without a `latest` checkpoint", "a run directory of aios train, or a ckpt-*.pt");
  }
  checkpoint.path = is_directory(path) ? resolve_checkpoint_path("latest", path) : path;
  if (!is_regular_file(checkpoint.path)) {
    throw Error(checkpoint.path, "does not exist",
                "a checkpoint file (ckpt-NNNNNNNN.pt) or a run directory whose `latest` names one");
  }
  torch::serialize::InputArchive archive;
  load_archive(archive, checkpoint.path, at::kCPU);
  c10::IValue value;
  if (!archive.try_read("format", value) || !value.isInt() || value.toInt() != kCheckpointFormat) {
    throw Error(checkpoint.path, "is not an aios checkpoint of format " + std::to_string(kCheckpointFormat),
                "a ckpt-NNNNNNNN.pt written by aios train");
  }
  archive.read("step", value);
  checkpoint.step = value.toInt();
  checkpoint.metadata = read_metadata(archive, checkpoint.path);
  archive.read("model", checkpoint.weights);
  return checkpoint;
}

}  // namespace aios
