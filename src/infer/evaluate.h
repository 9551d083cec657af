// Measuring a model: the loss and perplexity of a token stream, and multiple-choice accuracy on
// HellaSwag-format items scored as lm-evaluation-harness scores them.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "memory/mixed_precision.h"
#include "model/gpt.h"

namespace aios {

struct TokenLoss {
  double loss_sum = 0;  // nats
  std::int64_t tokens = 0;
  double mean() const { return tokens > 0 ? loss_sum / static_cast<double>(tokens) : 0.0; }
  double perplexity() const { return std::exp(mean()); }
};

// Every token of `ids` after the first predicted from those before it, in consecutive windows of
// `window` predictions that each start afresh (no context carried across windows); `batch`
// windows run at once.
TokenLoss evaluate_tokens(Gpt& model, std::span<const std::uint32_t> ids, std::int64_t window, std::int64_t batch,
                          const MixedPrecision& precision);

struct MultipleChoiceItem {
  std::string context;
  std::vector<std::string> endings;
  std::int64_t label = 0;
};

// Reads a HellaSwag-format JSONL file: one object per line with "ctx" (or "ctx_a" and "ctx_b"),
// "endings" (2 or more strings) and "label" (an index, number or string). A malformed line is an
// error naming path:line.
std::vector<MultipleChoiceItem> read_hellaswag_jsonl(const std::string& path);

struct MultipleChoiceResult {
  std::int64_t items = 0;
  std::int64_t correct = 0;                             // by the summed log-likelihood of the ending ("acc")
  std::int64_t correct_normalized = 0;                  // by log-likelihood per character of the ending ("acc_norm")
  std::vector<std::int64_t> chosen, chosen_normalized;  // [items]
  double accuracy() const { return items ? static_cast<double>(correct) / items : 0.0; }
  double accuracy_normalized() const { return items ? static_cast<double>(correct_normalized) / items : 0.0; }
};

// Each ending is scored as the continuation " " + ending of the context: the tokens of
// context + continuation past those of the context alone (as lm-evaluation-harness splits them),
// their log-probabilities summed; acc_norm divides by the ending's length in characters.
MultipleChoiceResult evaluate_multiple_choice(Gpt& model, const Tokenizer& tokenizer,
                                              const std::vector<MultipleChoiceItem>& items,
                                              const MixedPrecision& precision);

}  // namespace aios
