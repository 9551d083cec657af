#include "plan/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/error.h"

namespace aios {
namespace {

constexpr double kMiB = 1 << 20;

std::string count_text(double n) {
  char text[32];
  if (n >= 1e9) {
    std::snprintf(text, sizeof(text), "%.2fB", n / 1e9);
  } else if (n >= 1e6) {
    std::snprintf(text, sizeof(text), "%.1fM", n / 1e6);
  } else {
    std::snprintf(text, sizeof(text), "%.0f", n);
  }
  return text;
}

// Everything the plan reads from the options, in bytes and tokens.
struct Shape {
  double C, V, L, heads, window, batch;
  double p;      // bytes of a parameter (float32, or float64 for reference runs)
  double a;      // bytes of a matmul operand: the autocast type under AMP, else p
  double stats;  // a LayerNorm's mean and 1/std per token, in the parameter type
  double lse;    // attention's saved log-sum-exp per token, or the math kernel's probabilities
  bool amp, checkpointing, chunked_loss;
  std::int64_t checkpoint_every;
  double kept_attention;  // per token of a checkpointed block: its kept attention output and log-sum-exp
  double loss_chunk;
};

Shape shape_of(const GptConfig& config, const TrainOptions& o, const PlanTarget& target, std::string& attention) {
  Shape s{};
  s.C = static_cast<double>(config.n_embd);
  s.V = static_cast<double>(config.vocab_size);
  s.L = static_cast<double>(config.n_layer);
  s.heads = static_cast<double>(config.n_head);
  s.window = static_cast<double>(o.data.window_size);
  s.batch = static_cast<double>(o.data.batch_size);
  s.p = o.model.dtype == ModelDtype::kFloat64 ? 8 : 4;
  s.amp = o.memory.amp && o.model.dtype == ModelDtype::kFloat32;
  s.a = s.amp ? 2 : s.p;
  s.stats = 2 * s.p;
  s.checkpointing = o.memory.gradient_checkpointing;
  s.checkpoint_every = std::max<std::int64_t>(1, o.memory.checkpoint_every);
  s.chunked_loss = o.memory.chunked_loss;
  // Flash, memory-efficient and cuDNN attention keep one float32 log-sum-exp per head and token;
  // the math kernel (forced, or planned for the CPU) keeps the whole probability matrix, [heads,
  // window] per token.
  const bool math = !target.cuda || o.memory.attention == AttentionBackend::kMath;
  attention = math ? "math"
              : o.memory.attention == AttentionBackend::kAuto
                  ? "auto (flash, cuDNN or memory-efficient: O(window) per head)"
                  : to_string(o.memory.attention);
  s.lse = math ? s.heads * s.window * (2 * s.a) : 4 * s.heads;
  // Checkpointed blocks keep their attention output where flash or cuDNN runs it: on a GPU, with
  // 16-bit inputs, without dropout, with a backend that is not math or memory-efficient
  // (memory/kept_attention.h).
  const bool kept = s.checkpointing && o.memory.keep_attention_output && target.cuda && s.a == 2 &&
                    o.model.dropout == 0.0 && o.memory.attention != AttentionBackend::kMath &&
                    o.memory.attention != AttentionBackend::kEfficient;
  s.kept_attention = kept ? s.a * s.C + s.lse : 0;
  const double loss_chunk_tokens = o.memory.loss_chunk_tokens > 0
                                       ? static_cast<double>(o.memory.loss_chunk_tokens)
                                       : std::max(128.0, std::floor(256.0 * kMiB / (s.a * s.V)));
  s.loss_chunk = loss_chunk_tokens;
  return s;
}

// Bytes per token that one block saves for its backward when it is not checkpointed: its input and
// the attention's residual sum in the parameter type, each LayerNorm's and matmul's output in the
// matmul type (qkv 3C, attention output C, the MLP's 4C before and after GELU), LayerNorm
// statistics and attention's log-sum-exp.
double block_saved_per_token(const Shape& s) { return (2 * s.p + 14 * s.a) * s.C + 2 * s.stats + s.lse; }

// A checkpointed block saves only its input; its backward recomputes the rest up to the MLP's
// output projection (the residual sum y in the parameter type), and while going back through the
// MLP holds the gradient into GELU's output and input (4C each) and the incoming gradient cast to
// the matmul type.
// A kept attention output is the one the forward saved, not a new tensor.
double block_recompute_per_token(const Shape& s) {
  return (14 * s.a + s.p) * s.C + 2 * s.stats + s.lse + 8 * s.a * s.C + (s.a != s.p ? s.a * s.C : 0) - s.kept_attention;
}

// What a rank holds across the step: weights and optimizer state; gradients from the backward to
// the optimizer step; under several ranks the buckets in flight.
struct PersistentItems {
  MemoryItem weights, optimizer, gradients, communication, workspace;
};

PersistentItems persistent_items(const GptConfig& config, const TrainOptions& o, const Shape& s,
                                 const PlanTarget& target) {
  const double P = static_cast<double>(config.parameter_count());
  const double ranks = static_cast<double>(std::max<std::int64_t>(1, target.ranks));
  const bool zero = ranks > 1 && o.parallel.shard_optimizer;
  const double shard = zero ? ranks : 1.0;
  const std::string shard_text = zero ? ", 1/" + std::to_string(target.ranks) + " per rank (ZeRO-1)" : "";
  PersistentItems items;
  items.weights = {"weights", P * s.p, count_text(P) + " parameters x " + std::to_string(int(s.p)) + " bytes"};
  double state = 0;
  for (const std::int64_t elements : config.parameter_sizes()) {
    const double n = static_cast<double>(elements);
    // 8-bit: codes and two float32 maxima per 256-element block; tensors under 4096 elements keep
    // 32-bit moments. Each 32-bit tensor also has a step count.
    state += o.optimizer.use_8bit_optimizer && n >= 4096 ? 2 * n + 2 * 4 * std::ceil(n / 256) : 2 * s.p * n + 4;
  }
  items.optimizer = {"optimizer state", state / shard,
                     o.optimizer.use_8bit_optimizer
                         ? "AdamW moments in 8 bits (blocks of 256, two float32 maxima each)" + shard_text
                         : "AdamW moments, 2 x " + std::to_string(int(s.p)) + " bytes per parameter" + shard_text};
  items.gradients = {"gradients", P * s.p, "one per parameter, " + std::to_string(int(s.p)) + " bytes"};
  items.communication = {"gradient buckets in flight", 0, ""};
  if (ranks > 1) {
    // Buckets are flattened for their collective; two may be in flight while the next fills.
    items.communication.bytes = 2 * std::min(o.parallel.bucket_mb * 1e6, P * s.p);
    items.communication.detail = "2 x --bucket-mb " + count_text(o.parallel.bucket_mb) + " MB";
    if (zero) {
      items.gradients.bytes = P * s.p / shard + P * s.p;  // this rank's shard, and the backward's full gradients
      items.gradients.detail = "the backward's full gradients and this rank's reduced shard";
    }
  }
  // cuBLAS and cuBLASLt workspaces come from PyTorch's allocator; rounding of each tensor to the
  // allocator's block sizes adds about 2 % to the persistent tensors (measured on an H200).
  items.workspace = {
      "library workspaces and allocator rounding",
      target.cuda ? 64 * kMiB + 0.02 * (items.weights.bytes + items.optimizer.bytes + items.gradients.bytes) : 0,
      target.cuda ? "cuBLAS/cuBLASLt 2 x 32 MiB, 2 % block rounding" : "none on the CPU"};
  return items;
}

}  // namespace

double MemoryMoment::bytes() const {
  double total = 0;
  for (const auto& item : items) total += item.bytes;
  return total;
}

MemoryPlan plan_memory(const GptConfig& config, const TrainOptions& o, const PlanTarget& target) {
  MemoryPlan plan;
  plan.micro_batch = o.data.batch_size;
  plan.accumulation = o.data.gradient_accumulation_steps;
  const Shape s = shape_of(config, o, target, plan.attention);
  const PersistentItems persistent = persistent_items(config, o, s, target);
  const MemoryItem &weights = persistent.weights, &optimizer = persistent.optimizer, &gradients = persistent.gradients,
                   &communication = persistent.communication, &workspace = persistent.workspace;
  const double P = static_cast<double>(config.parameter_count());
  const double ranks = static_cast<double>(std::max<std::int64_t>(1, target.ranks));
  const bool zero = ranks > 1 && o.parallel.shard_optimizer;

  const double micro = s.batch;
  const bool chunked_training =
      o.memory.chunked_training && o.memory.chunk_size > 0 && o.memory.chunk_size < o.data.window_size;
  const double chunk = chunked_training ? static_cast<double>(o.memory.chunk_size) : s.window;
  const double n = micro * chunk;  // tokens of one forward pass (one chunk of a long window)
  const std::string tokens_text = count_text(n) + " tokens";

  // Saved activations of a whole forward: checkpointed blocks keep only their input (and their
  // attention output where it is kept).
  const double checkpointed = s.checkpointing ? std::ceil(s.L / static_cast<double>(s.checkpoint_every)) : 0;
  const double plain = s.L - checkpointed;
  const double saved_per_token = checkpointed * (s.p * s.C + s.kept_attention) + plain * block_saved_per_token(s) +
                                 s.p * s.C + s.stats + s.a * s.C;
  // Autocast keeps each matmul's weight cast to 16 bits until its backward (not in checkpointed
  // blocks, which run with the cast cache off).
  const double cast_weights = s.amp ? plain * 12 * s.C * s.C * s.a : 0;
  // Attention over earlier chunks: keys/values of all chunks but the last, stored and with their
  // gradients; a chunk's backward also forms the gradients for the earlier chunks' keys/values
  // (as computed, then accumulated into a dense copy).
  double past = 0, past_concat = 0;
  std::string past_text;
  if (chunked_training) {
    const bool exact = o.memory.chunk_mode == ChunkMode::kExact;
    const double earlier =
        exact ? s.window - chunk
              : std::min(o.memory.chunk_memory > 0 ? static_cast<double>(o.memory.chunk_memory) : s.window,
                         s.window - chunk);
    past = 2 * s.L * micro * earlier * s.C * s.a;
    past_concat = 2 * micro * (earlier + chunk) * s.C * s.a;  // one layer's keys/values joined with the chunk's
    past_text = count_text(earlier) + " earlier tokens' keys/values, " + std::to_string(int(s.L)) + " layers";
  }
  const bool exact_chunks = chunked_training && o.memory.chunk_mode == ChunkMode::kExact;
  // A checkpointed chunk returns its keys and values as views of its blocks' qkv (3C) and rotated
  // query/key (2C) tensors, which they keep alive until the chunk's backward is done.
  const double chunk_views = chunked_training && s.checkpointing ? 5 * s.L * n * s.C * s.a : 0;
  // Gradients of earlier micro-batches (or chunks) are held from the start of the next forward.
  const bool accumulating = o.data.gradient_accumulation_steps > 1 || chunked_training;
  const std::string accumulated_text = chunked_training ? "earlier chunks' sum" : "earlier micro-batches' sum";

  // The classifier: logits of one chunk of tokens in the matmul type (all tokens without
  // --chunked-loss); the loss's gradient is formed in the forward: into the hidden states (matmul
  // type) and the tied embedding (parameter type, summed in float32 over chunks).
  const double loss_chunk = s.chunked_loss ? std::min(s.loss_chunk, n) : n;
  const double head_cast = s.a != s.p ? s.V * s.C * s.a : 0;
  const double classifier = loss_chunk * s.V * s.a + n * s.C * s.a + (loss_chunk < n ? loss_chunk * s.C * s.a : 0) +
                            s.V * s.C * s.p + (s.a != s.p && loss_chunk < n ? s.V * s.C * 4 : 0) + head_cast;
  const std::string classifier_text = count_text(loss_chunk) + " tokens x " + count_text(s.V) +
                                      " logits, their gradient into the hidden states and " + "the embedding";

  std::vector<MemoryMoment> moments_extra;
  // Moment 1: the end of the forward, in the classifier.
  MemoryMoment forward{"end of the forward (classifier)", {weights, optimizer, workspace}};
  forward.items.push_back({"activations saved for the backward", n * saved_per_token + cast_weights,
                           tokens_text + ", " + std::to_string(int(checkpointed)) + " checkpointed blocks of " +
                               std::to_string(int(s.L)) +
                               (s.kept_attention > 0 ? " (inputs and attention outputs)" : "") +
                               (cast_weights > 0 ? ", 16-bit weight casts" : "")});
  forward.items.push_back({"classifier", classifier, classifier_text});
  if (accumulating) forward.items.push_back({"gradients", gradients.bytes, accumulated_text});
  if (chunked_training) {
    forward.items.push_back({"keys/values of earlier chunks", (exact_chunks ? 2 : 1) * past,
                             past_text + (exact_chunks ? ", and their gradients" : "")});
    forward.items.push_back({"this chunk's keys/values", chunk_views, "views that hold each block's qkv"});
    if (!s.checkpointing) forward.items.push_back({"attention over earlier chunks", s.L * past_concat, "per layer"});
  }

  // Moment 2: the classifier's backward scales the gradients its forward formed (a copy of each),
  // and with gradients already held adds them in.
  MemoryMoment head{"backward of the classifier", {weights, optimizer, workspace}};
  head.items.push_back(
      {"activations saved for the backward", n * (saved_per_token - s.a * s.C) + cast_weights, tokens_text});
  head.items.push_back({"classifier's gradients, scaled", 2 * (s.V * s.C * s.p + n * s.C * s.a),
                        "into the embedding and the hidden states, as formed and scaled"});
  if (accumulating) head.items.push_back({"gradients", gradients.bytes, accumulated_text});
  if (chunked_training) {
    head.items.push_back({"keys/values of earlier chunks", (exact_chunks ? 2 : 1) * past, past_text});
    head.items.push_back({"this chunk's keys/values", chunk_views, "views that hold each block's qkv"});
  }

  // Moment 3: the backward of the first block, the last to run: every other gradient is formed.
  MemoryMoment backward{"backward of the first block", {weights, optimizer, workspace, gradients}};
  if (ranks > 1) backward.items.push_back(communication);
  if (s.checkpointing) {
    backward.items.push_back({"recomputed block", n * (2 * s.p * s.C + block_recompute_per_token(s)),
                              tokens_text + ": its input and incoming gradient, recomputed activations and MLP "
                                            "gradients"});
    backward.items.push_back({"recomputed block's weights and gradients",
                              12 * s.C * s.C * ((s.amp ? 2 : 0) * s.a + s.p), "one block's matrices"});
  } else {
    // Without checkpointing the backward starts with every activation held: its first block.
    backward.name = "backward of the last block";
    backward.items = {weights, optimizer, workspace};
    backward.items.push_back({"activations saved for the backward", n * saved_per_token + cast_weights, tokens_text});
    backward.items.push_back(accumulating
                                 ? MemoryItem{"gradients", gradients.bytes, accumulated_text}
                                 : MemoryItem{"gradients formed so far", s.V * s.C * s.p + 12 * s.C * s.C * s.p,
                                              "the embedding's (classifier) and one block's"});
    backward.items.push_back(
        {"backward temporaries", n * (s.p * s.C + 8 * s.a * s.C), "the incoming gradient and the MLP's"});
  }
  if (chunked_training) {
    backward.items.push_back(
        {"keys/values of earlier chunks", (exact_chunks ? 3 : 1) * past,
         past_text + (exact_chunks ? ", their gradients, and this chunk's gradients for them" : "")});
    backward.items.push_back({"this chunk's keys/values", chunk_views, "views that hold each block's qkv"});
    backward.items.push_back({"attention over earlier chunks", (s.checkpointing ? 2 : s.L + 1) * past_concat,
                              s.checkpointing ? "one layer's joined keys/values" : "every layer's joined keys/values"});
  }

  // Moment 4 (checkpointing): the backward of the last block, the first to run. All blocks' inputs
  // are still held, few gradients formed: the peak when activations outweigh the gradients (small
  // models, large batches).
  if (s.checkpointing) {
    MemoryMoment last{"backward of the last block", {weights, optimizer, workspace}};
    last.items.push_back(accumulating
                             ? MemoryItem{"gradients", gradients.bytes, accumulated_text}
                             : MemoryItem{"gradients formed so far", s.V * s.C * s.p, "the embedding's (classifier)"});
    last.items.push_back({"activations saved for the backward", n * (saved_per_token - s.p * s.C - s.stats - s.a * s.C),
                          tokens_text + ", every block's"});
    last.items.push_back({"recomputed block", n * (s.p * s.C + block_recompute_per_token(s)),
                          tokens_text + ": its incoming gradient, recomputed activations and MLP gradients"});
    last.items.push_back({"recomputed block's weights and gradients", 12 * s.C * s.C * ((s.amp ? 2 : 0) * s.a + s.p),
                          "one block's matrices"});
    if (chunked_training) {
      last.items.push_back({"keys/values of earlier chunks", (exact_chunks ? 3 : 1) * past, past_text});
      last.items.push_back({"this chunk's keys/values", chunk_views, "views that hold each block's qkv"});
      last.items.push_back({"attention over earlier chunks", 2 * past_concat, "one layer's joined keys/values"});
    }
    moments_extra.push_back(last);
  }

  // Moment 5: the optimizer step.
  MemoryMoment step{"optimizer step", {weights, optimizer, workspace, gradients}};
  if (zero) step.items.back() = {"gradients", P * s.p / ranks, "this rank's reduced shard"};

  plan.moments = {forward, head, backward};
  plan.moments.insert(plan.moments.end(), moments_extra.begin(), moments_extra.end());
  plan.moments.push_back(step);
  for (std::size_t i = 0; i < plan.moments.size(); ++i) {
    if (plan.moments[i].bytes() > plan.peak_bytes) {
      plan.peak_bytes = plan.moments[i].bytes();
      plan.peak_moment = i;
    }
  }
  // The caching allocator holds freed blocks for reuse; measured on an H200, its reserved peak is
  // 1-5 % above the allocated peak when the whole forward's activations are held, and 2-16 % above
  // with checkpointing or chunks, whose many short-lived tensors of differing sizes fragment it.
  plan.reserved_bytes = plan.peak_bytes * (s.checkpointing || chunked_training ? 1.07 : 1.03);
  return plan;
}

std::vector<FitProposal> fit_memory(const GptConfig& config, const TrainOptions& options, const PlanTarget& target,
                                    double budget_bytes) {
  const double usable = budget_bytes - (target.cuda ? kCudaContextBytes : 0);
  const auto fits = [&](const TrainOptions& o) { return plan_memory(config, o, target).reserved_bytes <= usable; };
  const std::int64_t windows = options.data.batch_size * options.data.gradient_accumulation_steps;
  // The largest micro-batch that fits with `o`'s flags, up to `limit` (0: none fits).
  const auto largest = [&](TrainOptions o, std::int64_t limit) {
    std::int64_t low = 0, high = limit;
    while (low < high) {
      const std::int64_t mid = (low + high + 1) / 2;
      o.data.batch_size = mid;
      if (fits(o)) {
        low = mid;
      } else {
        high = mid - 1;
      }
    }
    return low;
  };
  const auto proposal = [&](const std::string& what, const std::vector<std::string>& flags, TrainOptions o,
                            std::int64_t micro) {
    o.data.batch_size = micro;
    o.data.gradient_accumulation_steps = std::max<std::int64_t>(1, (windows + micro - 1) / micro);
    return FitProposal{what, flags, o, plan_memory(config, o, target)};
  };

  std::vector<FitProposal> result;
  if (const std::int64_t micro = largest(options, 1 << 16); micro > 0) {
    TrainOptions o = options;
    o.data.batch_size = micro;
    result.push_back(FitProposal{"the largest micro-batch with the flags given",
                                 {"--batch-size " + std::to_string(micro)},
                                 o,
                                 plan_memory(config, o, target)});
  }

  // Techniques in order of what they cost in speed: mixed precision is faster, chunked loss and
  // 8-bit AdamW cost little, checkpointing recomputes a forward, chunks of a long window more.
  TrainOptions o = options;
  std::vector<std::string> flags;
  const auto add = [&](bool already, const std::string& flag, auto&& apply) {
    if (already) return;
    apply(o);
    flags.push_back(flag);
    if (fits(o) && result.size() < 2) {
      result.push_back(proposal("the cheapest flags for --batch-size " + std::to_string(options.data.batch_size), flags,
                                o, options.data.batch_size));
    }
  };
  if (fits(o)) return result;  // the flags given fit the batch asked: nothing to add
  add(o.memory.amp, "--amp", [](TrainOptions& t) { t.memory.amp = true; });
  add(o.memory.chunked_loss, "--chunked-loss", [](TrainOptions& t) { t.memory.chunked_loss = true; });
  add(o.optimizer.use_8bit_optimizer, "--use-8bit-optimizer",
      [](TrainOptions& t) { t.optimizer.use_8bit_optimizer = true; });
  add(o.memory.gradient_checkpointing && o.memory.checkpoint_every == 1, "--gradient-checkpointing",
      [](TrainOptions& t) { t.memory.gradient_checkpointing = true, t.memory.checkpoint_every = 1; });
  if (options.data.window_size >= 4096) {
    const std::int64_t chunk = std::max<std::int64_t>(1024, options.data.window_size / 8);
    add(o.memory.chunked_training, "--chunked-training --chunk-size " + std::to_string(chunk),
        [chunk](TrainOptions& t) {
          t.memory.chunked_training = true, t.memory.chunk_size = chunk, t.memory.chunk_mode = ChunkMode::kExact;
        });
  }
  if (result.size() < 2) {
    const std::int64_t micro = largest(o, options.data.batch_size);
    if (micro > 0) {
      flags.push_back("--batch-size " + std::to_string(micro) + " --gradient-accumulation-steps " +
                      std::to_string((windows + micro - 1) / micro));
      result.push_back(
          proposal("every technique, a smaller micro-batch and accumulation for the same windows", flags, o, micro));
    }
  }
  return result;
}

}  // namespace aios
