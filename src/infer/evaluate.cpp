#include "infer/evaluate.h"

#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/log_softmax.h>
#include <torch/types.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"
#include "infer/inference_scope.h"

namespace aios {
namespace {

at::Tensor to_ids(std::span<const std::uint32_t> ids, const torch::Device& device) {
  std::vector<std::int64_t> wide(ids.begin(), ids.end());
  return torch::tensor(wide, torch::kLong).to(device);
}

std::int64_t utf8_characters(const std::string& text) {
  return std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; });
}

}  // namespace

TokenLoss evaluate_tokens(Gpt& model, std::span<const std::uint32_t> ids, std::int64_t window, std::int64_t batch,
                          const MixedPrecision& precision) {
  TokenLoss result;
  if (ids.size() < 2) return result;
  const InferenceScope inference(model, precision);
  const auto device = model->wte->weight.device();
  const auto predictions = static_cast<std::int64_t>(ids.size()) - 1;
  std::vector<at::Tensor> sums;
  // Full windows in batches, then the shorter last one alone.
  const std::int64_t full = predictions / window;
  for (std::int64_t first = 0; first < full; first += batch) {
    const std::int64_t rows = std::min(batch, full - first);
    const auto span =
        ids.subspan(static_cast<std::size_t>(first * window), static_cast<std::size_t>(rows * window + 1));
    const auto all = to_ids(span, device);
    std::vector<at::Tensor> inputs, targets;
    for (std::int64_t r = 0; r < rows; ++r) {
      inputs.push_back(all.narrow(0, r * window, window));
      targets.push_back(all.narrow(0, r * window + 1, window));
    }
    const auto logits = model->forward(at::stack(inputs)).to(at::kFloat);
    sums.push_back(at::cross_entropy_loss(logits.flatten(0, 1), at::stack(targets).flatten(), {}, at::Reduction::Sum));
  }
  if (const std::int64_t rest = predictions - full * window; rest > 0) {
    const auto all = to_ids(ids.subspan(static_cast<std::size_t>(full * window)), device);
    const auto logits = model->forward(all.narrow(0, 0, rest).unsqueeze(0)).to(at::kFloat);
    sums.push_back(at::cross_entropy_loss(logits.squeeze(0), all.narrow(0, 1, rest), {}, at::Reduction::Sum));
  }
  result.loss_sum = at::stack(sums).sum().to(at::kDouble).item<double>();  // sync
  result.tokens = predictions;
  return result;
}

std::vector<MultipleChoiceItem> read_hellaswag_jsonl(const std::string& path) {
  if (!is_regular_file(path)) throw Error(path, "does not exist or is not a file", "a HellaSwag-format .jsonl file");
  std::ifstream file(path);
  std::vector<MultipleChoiceItem> items;
  std::string line;
  const std::string accepted = R"(one JSON object per line: {"ctx": "...", "endings": ["...", "..."], "label": 0})";
  for (std::size_t number = 1; std::getline(file, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    MultipleChoiceItem item;
    try {
      const auto json = nlohmann::json::parse(line);
      if (json.contains("ctx")) {
        item.context = json.at("ctx").get<std::string>();
      } else {
        item.context = json.at("ctx_a").get<std::string>() + " " + json.at("ctx_b").get<std::string>();
      }
      item.endings = json.at("endings").get<std::vector<std::string>>();
      const auto& label = json.at("label");
      item.label = label.is_string() ? std::stoll(label.get<std::string>()) : label.get<std::int64_t>();
    } catch (const std::exception& e) {
      throw Error(where, std::string("is not a HellaSwag item (") + e.what() + ")", accepted);
    }
    if (item.endings.size() < 2) throw Error(where, "has fewer than two endings", accepted);
    if (item.label < 0 || item.label >= static_cast<std::int64_t>(item.endings.size())) {
      throw Error(
          where, "has label " + std::to_string(item.label) + " for " + std::to_string(item.endings.size()) + " endings",
          "a label that indexes the endings (from 0)");
    }
    items.push_back(std::move(item));
  }
  if (items.empty()) throw Error(path, "holds no items", accepted);
  return items;
}

MultipleChoiceResult evaluate_multiple_choice(Gpt& model, const Tokenizer& tokenizer,
                                              const std::vector<MultipleChoiceItem>& items,
                                              const MixedPrecision& precision) {
  const InferenceScope inference(model, precision);
  const auto device = model->wte->weight.device();
  const std::int64_t positions = model->config().rope() ? INT64_MAX : model->config().max_positions;
  MultipleChoiceResult result;
  for (const auto& item : items) {
    // Trailing spaces of the context belong to the continuation (lm-evaluation-harness's rule).
    const std::size_t kept = item.context.find_last_not_of(' ') + 1;
    const std::string context_text = item.context.substr(0, kept);
    const std::string spaces = item.context.substr(kept);
    std::vector<std::uint32_t> context;
    tokenizer.encode(context_text, context);
    std::vector<double> sums, per_character;
    for (const auto& ending : item.endings) {
      std::vector<std::uint32_t> whole;
      tokenizer.encode(context_text + spaces + " " + ending, whole);
      // lm-evaluation-harness's split: the continuation is what the whole has past the context's
      // token count (the two encodings can differ at the seam).
      const std::size_t split = std::min(context.size(), whole.size() - 1);
      // Longer than the model's positions: the context's start is dropped.
      const std::size_t skip = whole.size() > static_cast<std::size_t>(positions) + 1
                                   ? whole.size() - static_cast<std::size_t>(positions) - 1
                                   : 0;
      const auto ids = to_ids(std::span<const std::uint32_t>(whole).subspan(skip), device);
      const auto length = ids.size(0);
      const auto log_probs =
          at::log_softmax(model->forward(ids.narrow(0, 0, length - 1).unsqueeze(0)).to(at::kFloat), -1);
      const auto targets = ids.narrow(0, 1, length - 1);
      const auto picked = log_probs.squeeze(0).gather(1, targets.unsqueeze(1)).squeeze(1);
      const auto first = static_cast<std::int64_t>(std::max(split, skip + 1) - skip - 1);
      const double sum = picked.narrow(0, first, length - 1 - first).sum().to(at::kDouble).item<double>();  // sync
      sums.push_back(sum);
      per_character.push_back(sum / static_cast<double>(std::max<std::int64_t>(1, utf8_characters(ending))));
    }
    const auto best = [](const std::vector<double>& scores) {
      return static_cast<std::int64_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
    };
    result.chosen.push_back(best(sums));
    result.chosen_normalized.push_back(best(per_character));
    result.correct += result.chosen.back() == item.label;
    result.correct_normalized += result.chosen_normalized.back() == item.label;
    ++result.items;
  }
  return result;
}

}  // namespace aios
