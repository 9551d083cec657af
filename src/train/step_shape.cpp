#include "train/step_shape.h"

#include "base/error.h"

namespace aios {

StepShape shrink_after_oom(const StepShape& shape, const TrainOptions& o, std::int64_t step, const std::string& what) {
  const std::int64_t windows = shape.micro_batch * shape.accumulation;
  if (shape.micro_batch > 1) {
    for (std::int64_t micro = shape.micro_batch / 2; micro >= 1; --micro) {
      if (windows % micro == 0) return {micro, windows / micro, shape.chunk_size};
    }
  }
  if (shape.chunk_size > 1) return {shape.micro_batch, shape.accumulation, (shape.chunk_size + 1) / 2};
  std::string enable;
  auto add = [&enable](bool off, const char* flag) {
    if (off) enable += std::string(enable.empty() ? "" : ", ") + flag;
  };
  const MemoryOptions& m = o.memory;
  add(!m.gradient_checkpointing, "--gradient-checkpointing");
  add(!m.amp, "--amp");
  add(!o.optimizer.use_8bit_optimizer, "--use-8bit-optimizer");
  add(!m.chunked_loss, "--chunked-loss");
  add(!m.chunked_training, "--chunked-training with a --chunk-size");
  add(m.gradient_checkpointing && m.checkpoint_every > 1, "--checkpoint-every 1");
  // Attention outputs are kept only where cuDNN or flash attention runs: never on the CPU.
  add(m.gradient_checkpointing && m.keep_attention_output && o.run.device != "cpu", "--no-keep-attention-output");
  enable += std::string(enable.empty() ? "" : ", ") + "a shorter --window-size (now " +
            std::to_string(o.data.window_size) + ")";
  throw Error("step " + std::to_string(step),
              "out of memory at micro-batch 1 (" + what + "); the step was not applied and the last checkpoint is kept",
              "less memory per sample: " + enable + ", or a smaller --model");
}

}  // namespace aios
