#include "train/setup.h"

#include <torch/cuda.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <regex>

#include "base/error.h"
#include "base/files.h"
#include "data/tokenizer.h"
#include "distributed/mpi_comm.h"
#include "io/metrics_log.h"
#include "memory/activation_checkpoint.h"
#include "memory/chunked_cross_entropy.h"
#include "model/causal_attention.h"
#include "model/hf_gpt2.h"
#include "train/device_stats.h"

namespace aios {
namespace {

std::int64_t parameter_bytes(const std::vector<torch::Tensor>& parameters) {
  std::int64_t bytes = 0;
  for (const auto& p : parameters) bytes += p.numel() * static_cast<std::int64_t>(p.element_size());
  return bytes;
}

// Where the run will write, checked before its first step rather than after its last: the
// out-dir (created here) takes files and has room for this rank's part of one checkpoint
// (`checkpoint_bytes`), and the directories of the profile and the export exist or can be made.
void check_outputs(const TrainOptions& o, std::int64_t checkpoint_bytes) {
  const std::string& out_dir = o.run.out_dir;
  if (path_exists(out_dir) && !is_directory(out_dir)) {
    throw Error("--out-dir", "'" + out_dir + "' is a file, not a directory", "a directory (made if missing)");
  }
  try {
    make_directories(out_dir);
  } catch (const Error& e) {
    throw Error("--out-dir", "cannot make '" + out_dir + "': " + e.what(), "a path where directories can be made");
  }
  if (const std::string why = why_not_writable(out_dir); !why.empty()) {
    throw Error("--out-dir", why, "a writable directory");
  }
  const std::int64_t free = free_bytes(out_dir);
  if (free >= 0 && free < checkpoint_bytes) {
    throw Error("--out-dir",
                "a checkpoint of this run needs about " + format_bytes(static_cast<double>(checkpoint_bytes)) +
                    " here and its file system has " + format_bytes(static_cast<double>(free)) + " free",
                "an --out-dir on a file system with room for at least one checkpoint");
  }
  const auto check_parent = [](const char* option, const std::string& path) {
    if (path.empty()) return;
    const std::string parent = parent_path(path);
    if (path_exists(path) && is_directory(path) && std::string(option) == "--profile-file") {
      throw Error(option, "'" + path + "' is a directory", "a file path for the trace");
    }
    if (!parent.empty() && !path_exists(parent)) {
      try {
        make_directories(parent);
      } catch (const Error& e) {
        throw Error(option, "cannot make '" + parent + "': " + e.what(), "a path in a writable directory");
      }
    }
    if (const std::string why = why_not_writable(parent); !why.empty()) {
      throw Error(option, why, "a path in a writable directory");
    }
  };
  check_parent("--profile-file", o.run.profile_file);
  check_parent("--export-hf", o.run.export_hf);
  if (!o.run.export_hf.empty() && path_exists(o.run.export_hf) && !is_directory(o.run.export_hf)) {
    throw Error("--export-hf", "'" + o.run.export_hf + "' is a file, not a directory", "a directory (made if missing)");
  }
}

}  // namespace

namespace {

// Under mpirun or srun each rank drives one GPU. --device cuda:N is honoured as given. Otherwise a
// rank that sees one GPU (Slurm's per-task binding, or CUDA_VISIBLE_DEVICES set per rank) takes it,
// and a rank that sees all of its node's GPUs takes the one of its local rank.
torch::Device choose_device(const std::string& requested, const RankInfo& ranks) {
  if (requested == "cpu") return torch::kCPU;
  if (requested == "auto" && !torch::cuda::is_available()) return torch::kCPU;
  if (!torch::cuda::is_available()) {
    throw Error("--device", "'" + requested + "' asked for CUDA but no CUDA device is available in this build/machine",
                "--device cpu or auto");
  }
  torch::Device device = requested == "auto" ? torch::Device(torch::kCUDA) : torch::Device(requested);
  const int visible = static_cast<int>(torch::cuda::device_count());
  const int index = cuda_device_for_rank(device.has_index() ? std::optional<int>(device.index()) : std::nullopt,
                                         ranks.world > 1 ? ranks.local_rank : 0, visible);
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

// A pretrained model reads the ids of its own tokenizer. Shards of another would train without
// complaint on ids that mean other text, so they are refused naming both tokenizers. A model
// directory without tokenizer files is held to the vocabulary size: the data's, or the data's
// padded by fewer than kVocabularyPadding rows (GPT-2's 50,257 is commonly padded to 50,304 so
// that the classifier's GEMMs run on aligned shapes).
constexpr std::int64_t kVocabularyPadding = 128;
void check_data_matches_pretrained_tokenizer(const TrainOptions& o, const Manifest& data, const GptConfig& config) {
  const std::string& dir = o.model.init_from;
  if (dir.empty()) return;
  const bool has_files = is_regular_file(join_path(dir, "tokenizer.json")) ||
                         is_regular_file(join_path(dir, "vocab.json")) ||
                         is_regular_file(join_path(dir, "tokenizer.model"));
  const std::string fix = "shards prepared with the model's tokenizer: aios prepare --tokenizer " + dir + " ...";
  const std::string data_tokenizer =
      data.tokenizer.kind + ":" + data.tokenizer.hash + ", vocab " + std::to_string(data.tokenizer.vocab_size);
  if (!has_files) {
    const std::int64_t data_vocab = data.tokenizer.vocab_size;
    if (config.vocab_size < data_vocab || config.vocab_size >= data_vocab + kVocabularyPadding) {
      throw Error("--dataset-file",
                  o.data.dataset_file + " holds ids of tokenizer " + data_tokenizer + ", but the model in " + dir +
                      " has a vocabulary of " + std::to_string(config.vocab_size) +
                      " (and no tokenizer files to compare; accepted: " + std::to_string(data_vocab) + " to " +
                      std::to_string(data_vocab + kVocabularyPadding - 1) + ", the data's padded)",
                  fix);
    }
    return;
  }
  const auto model_tokenizer = load_tokenizer(dir, "--init-from");
  if (model_tokenizer->hash() != data.tokenizer.hash) {
    throw Error("--dataset-file",
                o.data.dataset_file + " holds ids of tokenizer " + data_tokenizer + ", but --init-from " + dir +
                    " reads ids of " + model_tokenizer->kind() + ":" + model_tokenizer->hash() + ", vocab " +
                    std::to_string(model_tokenizer->vocab_size()),
                fix);
  }
}

// Without --out-dir each run gets its own directory, named by rank 0's start time (sent to every
// rank, whose clocks may have passed another second).
TrainOptions with_run_directory(TrainOptions o) {
  if (!o.run.out_dir.empty()) return o;
  if (!o.run.resume.empty()) {
    throw Error("--resume", "needs --out-dir: the run directory to continue", "--out-dir runs/NAME --resume latest");
  }
  std::int64_t started = std::time(nullptr);
  if (mpi_rank_info().world > 1) {
    ensure_mpi_initialized();
    MPI_Bcast(&started, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  }
  const std::time_t time = static_cast<std::time_t>(started);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char name[32];
  std::strftime(name, sizeof name, "%Y%m%d-%H%M%S", &utc);
  o.run.out_dir = join_path("runs", name);
  return o;
}

}  // namespace

// The model's shape: a Hugging Face config (--init-from) or a preset with overrides; then checked
// against the data and the window.
GptConfig model_config(const TrainOptions& o, const Manifest& data) {
  const ModelOptions& m = o.model;
  GptConfig config;
  if (!m.init_from.empty()) {
    if (m.n_layer > 0 || m.n_head > 0 || m.n_embd > 0 || m.max_positions > 0 || m.vocab_size > 0) {
      throw Error("--init-from", "takes the model's shape from " + m.init_from + "/config.json",
                  "no --n-layer/--n-head/--n-embd/--seq-len/--vocab-size with --init-from");
    }
    config = read_hf_gpt2_config(m.init_from);
  } else {
    config = gpt_preset(m.preset);
    if (m.n_layer > 0) config.n_layer = m.n_layer;
    if (m.n_head > 0) config.n_head = m.n_head;
    if (m.n_embd > 0) config.n_embd = m.n_embd;
    if (m.max_positions > 0) config.max_positions = m.max_positions;
    config.vocab_size = m.vocab_size > 0 ? m.vocab_size : data.tokenizer.vocab_size;
  }
  config.dropout = m.dropout;
  config.position = m.position;
  check_config(config);
  if (data.tokenizer.vocab_size > config.vocab_size) {
    throw Error("--vocab-size",
                "the dataset's vocabulary of " + std::to_string(data.tokenizer.vocab_size) +
                    " ids exceeds the model's " + std::to_string(config.vocab_size),
                "--vocab-size >= " + std::to_string(data.tokenizer.vocab_size) + " (or leave it unset)");
  }
  const std::int64_t window = o.data.window_size;
  if (!config.rope() && window > config.max_positions) {
    throw Error("--window-size",
                "value " + std::to_string(window) + " exceeds the model's " + std::to_string(config.max_positions) +
                    " positions",
                "--window-size <= " + std::to_string(config.max_positions) + ", a larger --seq-len, or --pos rope");
  }
  return config;
}

int cuda_device_for_rank(std::optional<int> requested, int local_rank, int visible) {
  const char* visible_env = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::string seen = std::to_string(visible) + " GPU(s)" +
                           (visible_env ? std::string(" (CUDA_VISIBLE_DEVICES=") + visible_env + ")" : std::string());
  if (requested) {
    if (*requested >= visible) {
      throw Error("--device", "cuda:" + std::to_string(*requested) + " but this rank sees " + seen,
                  "an index below " + std::to_string(visible) + ", or --device auto");
    }
    return *requested;
  }
  if (visible == 1) return 0;
  if (local_rank < visible) return local_rank;
  throw Error("--device", "local rank " + std::to_string(local_rank) + " has no GPU of its own: it sees " + seen,
              "one GPU per rank: as many ranks per node as GPUs, or Slurm's --gpus-per-task=1");
}

TrainingSetup::TrainingSetup(const TrainOptions& given) : options(with_run_directory(given)) {
  const TrainOptions& o = options;
  validate(o);
  const RankInfo ranks = mpi_rank_info();
  // From the first collective on, a stuck peer would leave this rank waiting for ever: connecting
  // the ranks (NCCL), the first broadcast and a checkpoint load are watched as the steps are.
  watchdog.emplace(ranks.rank, ranks.world > 1 ? o.parallel.hang_timeout : 0.0);  // one process: nothing to wait on
  watchdog->beat(0, "start-up: connecting the ranks");
  faults = FaultInjector::from_environment(ranks.rank, o.run.fault_injection);
  if (!o.run.fault_injection && ranks.rank == 0) {
    for (const auto& name : FaultInjector::variables_set()) {
      std::fprintf(
          stderr,
          "aios train: note: %s is set and ignored: fault injection is a testing aid, on only with --fault-injection\n",
          name.c_str());
    }
  }
  device = choose_device(o.run.device, ranks);
  comm = make_comm(device);
  lead = comm->rank() == 0;
  parameter_dtype = o.model.dtype == ModelDtype::kFloat64 ? torch::kDouble : torch::kFloat;
  precision = resolve_mixed_precision(o.memory.amp, o.memory.amp_dtype, device, parameter_dtype);

  // Data: this rank's share of the training windows; validation reads the same windows every time.
  shards = ShardSet::open(o.data.dataset_file);
  config = model_config(o, shards->manifest());
  check_data_matches_pretrained_tokenizer(o, shards->manifest(), config);
  checkpoint_metadata = metadata_of_run(config, *shards, o.data.window_size);
  ShardDatasetOptions train_options;
  train_options.rank = comm->rank();
  train_options.world = comm->world();
  train_options.window = o.data.window_size;
  train_options.seed = o.run.seed;
  train_options.verify_checksums = o.data.verify_shards;
  train_data.emplace(*shards, train_options);
  if (o.run.eval_batches > 0 && ShardDataset::windows_in(*shards, "val", o.data.window_size) > 0) {
    ShardDatasetOptions val_options = train_options;
    val_options.split = "val";
    val_options.shuffle = false;
    val_data.emplace(*shards, val_options);
  } else if (o.run.eval_batches > 0 && lead) {
    std::fprintf(stderr, "aios train: note: no validation: the val split of %s holds no window of %lld tokens\n",
                 o.data.dataset_file.c_str(), static_cast<long long>(o.data.window_size + 1));
  }

  if (o.run.sample_every > 0 || !o.run.eval_hellaswag.empty()) {
    tokenizer = load_shard_set_tokenizer(shards->directory(), shards->manifest().tokenizer.kind);
    if (!o.run.eval_hellaswag.empty()) hellaswag_items = read_hellaswag_jsonl(o.run.eval_hellaswag);
    tokenizer->encode(o.run.sample_prompt, sample_prompt);
    if (sample_prompt.empty()) {
      if (!tokenizer->end_of_text_id() && o.run.sample_every > 0) {
        throw Error("--sample-prompt", "is empty and the dataset's tokenizer has no end-of-text token to start from",
                    "a prompt");
      }
      if (tokenizer->end_of_text_id()) sample_prompt.push_back(*tokenizer->end_of_text_id());
    }
    if (o.run.sample_every > 0 && !config.rope() &&
        static_cast<std::int64_t>(sample_prompt.size()) >= config.max_positions) {
      throw Error("--sample-prompt",
                  "is " + std::to_string(sample_prompt.size()) + " tokens, no fewer than the model's " +
                      std::to_string(config.max_positions) + " positions",
                  "a shorter prompt");
    }
  }

  // Attention kernels: chosen once for the whole run, and reported.
  const auto compute_dtype = this->compute_dtype();
  attention = configure_attention(o.memory.attention, {device, compute_dtype, config.n_head, config.head_dim(),
                                                       o.data.window_size, o.model.dropout});
  if (o.memory.chunked_training) {
    chunking = ChunkedTraining{o.memory.chunk_mode, 0, o.memory.chunk_memory};
    // Chunks after the first attend to earlier tokens' keys too: a lower-right causal mask, which
    // may run on another kernel than the whole-window attention above.
    const auto like = at::TensorOptions(device).dtype(compute_dtype);
    const std::int64_t chunk = std::min(o.memory.chunk_size, o.data.window_size);
    chunk_attention = causal_attention_after_past_kernel(
        at::empty({1, config.n_head, chunk, config.head_dim()}, like),
        at::empty({1, config.n_head, 2 * chunk, config.head_dim()}, like), o.model.dropout);
  }

  // The model, with the memory techniques applied from outside; every rank starts from rank 0's weights.
  torch::manual_seed(o.run.seed);
  model = Gpt(config);
  if (!o.model.init_from.empty()) load_hf_gpt2_weights(o.model.init_from, model);
  if (o.memory.gradient_checkpointing) {
    apply_activation_checkpointing(model, o.memory.checkpoint_every, o.memory.keep_attention_output);
  }
  apply_chunked_loss(model, !o.memory.chunked_loss ? 0
                            : o.memory.loss_chunk_tokens > 0
                                ? o.memory.loss_chunk_tokens
                                : default_loss_chunk_tokens(config.vocab_size, c10::elementSize(compute_dtype)));
  model->to(device, parameter_dtype);
  parameters = model->parameters();
  faults.arm_mid_backward(parameters);
  if (comm->world() > 1) {
    torch::NoGradGuard no_grad;
    watchdog->beat(0, "start-up: broadcasting rank 0's weights");
    faults.at_step_start(0);  // AIOS_FAULT_HANG_AT_STEP=0 and its kin: a rank stuck in start-up
    for (auto& p : parameters) comm->broadcast(p, 0);  // collective
  }

  // Gradient sync, then the optimizer over the parameters (or shards of them) that the sync hands it.
  const OptimizerOptions& opt = o.optimizer;
  const AdamWSettings adamw{opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay, opt.decay_embeddings};
  gradient_sync = make_gradient_sync(adamw_groups(*model, adamw), parameters, *comm, o.parallel.shard_optimizer,
                                     static_cast<std::int64_t>(o.parallel.bucket_mb * 1024 * 1024));
  optimizer = make_adamw(gradient_sync->optimizer_groups(), adamw, opt.use_8bit_optimizer);
  scaler.emplace(precision.needs_loss_scaling(), device);
  schedule = LrSchedule{opt.lr, opt.min_lr, opt.warmup_steps, o.run.steps};

  check_outputs(o, (lead ? parameter_bytes(parameters) : 0) + optimizer->state_bytes());

  // auto: continue a run directory that has a checkpoint, else start (a requeued batch job). A
  // fresh run never writes over an earlier run's checkpoints unless told to.
  const std::string& out_dir = o.run.out_dir;
  if (lead) {
    out_dir_lock.emplace(join_path(out_dir, ".lock"), "--out-dir " + out_dir);
    // With the lock held no other run writes here: any temporary file is an interrupted write's.
    // Only names a checkpoint write uses: ckpt-N.pt, its shards and checksums, and latest.
    static const std::regex checkpoint_file(R"(ckpt-\d{8}(\.optimizer-rank-\d{5}-of-\d{5})?\.pt(\.crc32)?|latest)");
    const auto is_checkpoint_file = [](const std::string& stem) { return std::regex_match(stem, checkpoint_file); };
    for (const auto& name : remove_stale_temporaries(out_dir, is_checkpoint_file, /*any_pid=*/true)) {
      std::fprintf(stderr, "aios train: removed %s, left by an interrupted checkpoint write\n",
                   join_path(out_dir, name).c_str());
    }
  }
  const bool has_checkpoints = is_regular_file(join_path(out_dir, "latest"));
  std::string resume = o.run.resume != "auto" ? o.run.resume : has_checkpoints ? "latest" : "";
  if (o.run.resume == "auto" && has_checkpoints) {
    // The newest checkpoint whose files are intact on every rank (each checks what it can see).
    std::vector<std::string> candidates{resolve_checkpoint_path("latest", out_dir)};
    const std::string intact = newest_intact_checkpoint(out_dir);
    if (!intact.empty() && intact != candidates.front()) candidates.push_back(intact);
    resume.clear();
    for (const auto& candidate : candidates) {
      const std::string damage = checkpoint_damage(candidate);
      if (comm->agree_max(damage.empty() ? 0 : 1) == 0) {  // collective (host)
        resume = candidate;
        break;
      }
      if (lead) std::fprintf(stderr, "aios train: %s; --resume auto takes an older checkpoint\n", damage.c_str());
    }
    if (resume.empty()) {
      throw Error("--resume auto", "no intact checkpoint is left in " + out_dir,
                  "--overwrite to start afresh there, or another --out-dir");
    }
  }
  if (resume.empty() && has_checkpoints && !o.run.overwrite) {
    throw Error("--out-dir",
                "'" + out_dir + "' holds checkpoints of an earlier run (latest: " +
                    file_name(resolve_checkpoint_path("latest", out_dir)) + ")",
                "--resume latest (or auto) to continue it, --overwrite to start afresh there, or another --out-dir");
  }
  if (!resume.empty()) {
    watchdog->beat(0, "start-up: loading the checkpoint");
    progress = load_checkpoint(resume, out_dir, *model, *optimizer, *scaler, checkpoint_metadata, device, *comm,
                               gradient_sync->shards_optimizer_state());
    if (lead && !progress.data_change.empty()) {
      std::fprintf(stderr, "aios train: note: resuming %s onto %s; the data order starts over\n", resume.c_str(),
                   progress.data_change.c_str());
    }
    // On other data the saved position means nothing: that data is read from its start.
    if (progress.data_change.empty()) train_data->set_cursor(progress.data_cursor);
    resumed = true;
  }

  if (const auto gib = faults.memory_limit_gib()) {
    if (limit_device_memory(device, *gib * 1024.0 * 1024.0 * 1024.0)) {
      std::fprintf(stderr, "aios train: rank %d: memory limited to %.1f GiB (AIOS_FAULT_MEMORY_GIB)\n", comm->rank(),
                   *gib);
    } else {
      std::fprintf(stderr, "aios train: rank %d: note: AIOS_FAULT_MEMORY_GIB has no effect on %s (CUDA only)\n",
                   comm->rank(), device.str().c_str());
    }
  }
  if (lead && given.run.out_dir.empty()) {
    std::fprintf(stderr, "aios train: no --out-dir: this run writes to %s\n", o.run.out_dir.c_str());
  }

  step_graph_note = !o.run.cuda_graphs
                        ? "off (--no-cuda-graphs)"
                        : StepGraph::unavailable_because({device, comm->world(), scaler->enabled(), config.dropout > 0,
                                                          o.run.fault_injection, o.memory.chunked_training});
  if (step_graph_note.empty()) step_graph = std::make_unique<StepGraph>(device);
}

}  // namespace aios
