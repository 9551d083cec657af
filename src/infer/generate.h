// Text generation from a Gpt: the prompt runs once, then each new token attends to the earlier
// tokens' keys and values kept per layer (a key/value cache), so a token costs one position's
// forward instead of the whole sequence's. Sampling runs on the model's device with a generator
// of its own (training's random state is never touched), and the host looks at the tokens only
// every few steps, so the GPU is not made to wait token by token.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "memory/mixed_precision.h"
#include "model/gpt.h"

namespace aios {

struct SamplingOptions {
  std::int64_t max_new_tokens = 64;
  double temperature = 1.0;  // 0: greedy (the most likely token every time)
  std::int64_t top_k = 0;    // 0: no limit
  double top_p = 1.0;        // nucleus: the fewest tokens whose probability reaches top_p
  std::uint64_t seed = 1234;
  bool use_cache = true;                 // false: the whole sequence runs again for each token
  std::optional<std::uint32_t> stop_id;  // a sample ends after this token (end of text)
  MixedPrecision precision;              // autocast for the forward passes
};

struct Generation {
  std::vector<std::vector<std::uint32_t>> tokens;  // [samples] new tokens, each ending at stop_id if drawn
  std::int64_t forward_positions = 0;              // positions run through the model, prompt included
  double first_token_seconds = 0;                  // the prompt's pass and the first token (with any first-use costs)
  double seconds = 0;                              // the whole generation
};

// `samples` continuations of one prompt (at least one token). Throws naming --max-new-tokens when
// prompt + new tokens exceed the model's learned positions.
Generation generate(Gpt& model, const std::vector<std::uint32_t>& prompt, std::int64_t samples,
                    const SamplingOptions& options);

}  // namespace aios
