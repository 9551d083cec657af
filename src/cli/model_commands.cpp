// The commands that use a trained model: `aios sample` (generate text), `aios eval` (loss,
// perplexity, multiple-choice accuracy) and `aios export` (to a Hugging Face GPT-2 directory).
// Each takes an aios checkpoint, a run directory (its latest checkpoint) or a Hugging Face
// GPT-2 directory.
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "base/error.h"
#include "base/files.h"
#include "base/utf8.h"
#include "cli/app.h"
#include "data/shard_set.h"
#include "infer/evaluate.h"
#include "infer/generate.h"
#include "infer/model_source.h"
#include "model/hf_gpt2.h"

namespace aios::cli {
namespace {

constexpr const char* kSourceHelp =
    "An aios checkpoint (ckpt-NNNNNNNN.pt), a run directory (its latest checkpoint) or a Hugging Face GPT-2 "
    "directory";

struct ModelOptions {
  std::string source;
  std::string tokenizer;  // "" : the source's own
  std::string device = "auto";
  bool amp = true;
};

void add_model_options(CLI::App& cmd, ModelOptions& o) {
  cmd.add_option("source", o.source, kSourceHelp)->required();
  cmd.add_option("--tokenizer", o.tokenizer, "A tokenizer (directory or file) instead of the source's own");
  cmd.add_option("--device", o.device, "cpu, cuda, cuda:N, or auto (the first GPU if there is one)")
      ->capture_default_str();
  cmd.add_flag("--amp,!--no-amp", o.amp, "bf16 autocast on a GPU (the CPU always computes in fp32)")
      ->capture_default_str();
}

torch::Device device_of(const std::string& requested) {
  if (requested == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::kCPU;
  try {
    torch::Device device(requested);
    if (device.is_cuda() && !torch::cuda::is_available()) throw Error("--device", "'" + requested + "' but no GPU");
    return device;
  } catch (const c10::Error&) {
    throw Error("--device", "'" + requested + "' is not a device", "cpu, cuda, cuda:N or auto");
  }
}

MixedPrecision precision_of(const ModelOptions& o, const torch::Device& device) {
  return resolve_mixed_precision(o.amp && device.is_cuda(), AmpDtype::kAuto, device, at::kFloat);
}

LoadedModel load(const ModelOptions& o, torch::Device& device) {
  device = device_of(o.device);
  auto loaded = load_model(o.source, o.tokenizer, device);
  std::fprintf(stderr, "aios: model %s: %s on %s\n", loaded.description.c_str(),
               loaded.metadata.model.describe().c_str(), device.str().c_str());
  return loaded;
}

// ---- sample ----

struct SampleOptions {
  ModelOptions model;
  std::string prompt;
  std::int64_t num_samples = 1;
  bool no_cache = false;
  bool ignore_end_of_text = false;
  SamplingOptions sampling;
};

int run_sample(SampleOptions& o) {
  if (!is_valid_utf8(o.prompt)) throw Error("--prompt", "is not valid UTF-8", "a prompt in UTF-8 text");
  torch::Device device(torch::kCPU);
  auto loaded = load(o.model, device);
  std::vector<std::uint32_t> prompt;
  const auto end_of_text = loaded.tokenizer ? loaded.tokenizer->end_of_text_id() : std::nullopt;
  if (!loaded.tokenizer) {
    throw Error(o.model.source, "comes with no tokenizer to read the prompt",
                "--tokenizer (the one the model was trained with)");
  }
  loaded.tokenizer->encode(o.prompt, prompt);
  if (prompt.empty()) {
    if (!end_of_text) throw Error("--prompt", "is empty and the tokenizer has no end-of-text token to start from");
    prompt.push_back(*end_of_text);  // an unconditional sample starts after a document's end
  }
  o.sampling.use_cache = !o.no_cache;
  o.sampling.precision = precision_of(o.model, device);
  if (!o.ignore_end_of_text) o.sampling.stop_id = end_of_text;
  const Generation generation = generate(loaded.model, prompt, o.num_samples, o.sampling);
  std::int64_t new_tokens = 0;
  for (std::size_t i = 0; i < generation.tokens.size(); ++i) {
    auto tokens = generation.tokens[i];
    new_tokens += static_cast<std::int64_t>(tokens.size());
    if (end_of_text && !tokens.empty() && tokens.back() == *end_of_text) tokens.pop_back();
    if (generation.tokens.size() > 1) std::printf("---------- sample %zu\n", i + 1);
    std::printf("%s%s\n", o.prompt.c_str(), loaded.tokenizer->decode(tokens).c_str());
  }
  // After the first token, every sample adds one token per step.
  const double rest = generation.seconds - generation.first_token_seconds;
  const std::int64_t later = new_tokens - o.num_samples;
  std::fprintf(stderr,
               "aios sample: %lld new tokens in %.2f s: prompt pass and first token %.1f ms, then %.1f tokens/s "
               "(%s, %s)\n",
               static_cast<long long>(new_tokens), generation.seconds, generation.first_token_seconds * 1e3,
               rest > 0 && later > 0 ? later / rest : 0.0, o.sampling.use_cache ? "key/value cache" : "no cache",
               o.sampling.precision.describe().c_str());
  return 0;
}

// ---- eval ----

struct EvalOptions {
  ModelOptions model;
  std::string text_file;
  std::string dataset;
  std::string split = "val";
  std::string multiple_choice;
  std::int64_t window = 0;  // 0: the model's positions
  std::int64_t batch_size = 8;
  std::int64_t max_tokens = 0;
};

int run_eval(const EvalOptions& o) {
  if (!o.text_file.empty() && !o.dataset.empty()) {
    throw Error("--text-file", "and --dataset-file both give tokens to measure", "one of them");
  }
  if (o.text_file.empty() && o.dataset.empty() && o.multiple_choice.empty()) {
    throw Error("aios eval", "needs something to evaluate on", "--text-file, --dataset-file and/or --hellaswag");
  }
  // The inputs are checked before the model is loaded, which can take long.
  if (!o.text_file.empty() && !is_regular_file(o.text_file)) {
    throw Error("--text-file", "'" + o.text_file + "' does not exist or is not a file", "a text file");
  }
  const auto items =
      o.multiple_choice.empty() ? std::vector<MultipleChoiceItem>{} : read_hellaswag_jsonl(o.multiple_choice);
  const std::optional<ShardSet> set = o.dataset.empty() ? std::nullopt : std::optional(ShardSet::open(o.dataset));
  torch::Device device(torch::kCPU);
  auto loaded = load(o.model, device);
  const auto precision = precision_of(o.model, device);
  const GptConfig& config = loaded.metadata.model;
  // By default the window the model was trained on: positions past it were never trained.
  const std::int64_t trained = loaded.metadata.window;
  const std::int64_t window = o.window > 0  ? o.window
                              : trained > 0 ? trained
                                            : (config.rope() ? 1024 : config.max_positions);
  if (!config.rope() && window > config.max_positions) {
    throw Error("--window-size",
                std::to_string(window) + " exceeds the model's " + std::to_string(config.max_positions) + " positions",
                "--window-size <= " + std::to_string(config.max_positions));
  }
  if (!o.multiple_choice.empty()) {
    if (!loaded.tokenizer) throw Error(o.model.source, "comes with no tokenizer to read the items", "--tokenizer");
    const auto result = evaluate_multiple_choice(loaded.model, *loaded.tokenizer, items, precision);
    std::printf("%s: %lld items, acc %.4f (%lld), acc_norm %.4f (%lld)\n", o.multiple_choice.c_str(),
                static_cast<long long>(result.items), result.accuracy(), static_cast<long long>(result.correct),
                result.accuracy_normalized(), static_cast<long long>(result.correct_normalized));
    if (o.text_file.empty() && o.dataset.empty()) return 0;
  }
  std::vector<std::uint32_t> ids;
  std::string what;
  if (!o.text_file.empty()) {
    if (!loaded.tokenizer) throw Error(o.model.source, "comes with no tokenizer to read the text", "--tokenizer");
    loaded.tokenizer->encode(read_text_file(o.text_file), ids);
    what = o.text_file;
  } else {
    const TokenizerRecord &data = set->manifest().tokenizer, &model = loaded.metadata.tokenizer;
    if (data.vocab_size > config.vocab_size || (!model.hash.empty() && model.hash != data.hash)) {
      throw Error("--dataset-file",
                  o.dataset + " holds ids of tokenizer " + data.kind + ":" + data.hash + " (vocab " +
                      std::to_string(data.vocab_size) + "), the model reads " +
                      (model.hash.empty() ? "a vocabulary of " + std::to_string(config.vocab_size)
                                          : model.kind + ":" + model.hash),
                  "shards prepared with the model's tokenizer");
    }
    for (const auto& shard : set->shards(o.split)) {
      auto reader = set->open_shard(shard, true);
      const std::size_t at = ids.size();
      ids.resize(at + static_cast<std::size_t>(reader.size()));
      reader.read(0, reader.size(), ids.data() + at);
      if (o.max_tokens > 0 && static_cast<std::int64_t>(ids.size()) >= o.max_tokens) break;
    }
    what = o.dataset + " (" + o.split + ")";
  }
  if (o.max_tokens > 0 && static_cast<std::int64_t>(ids.size()) > o.max_tokens) ids.resize(o.max_tokens);
  if (ids.size() < 2) throw Error(what, "holds fewer than two tokens", "text or shards with something to predict");
  const TokenLoss loss = evaluate_tokens(loaded.model, ids, window, o.batch_size, precision);
  std::printf("%s: %lld tokens, loss %.6f, perplexity %.4f (windows of %lld)\n", what.c_str(),
              static_cast<long long>(loss.tokens), loss.mean(), loss.perplexity(), static_cast<long long>(window));
  return 0;
}

// ---- export ----

struct ExportOptions {
  std::string source;
  std::string to_hf;
  std::string tokenizer;
  bool overwrite = false;
};

int run_export(const ExportOptions& o) {
  if (o.to_hf.empty()) throw Error("aios export", "needs a destination", "--to-hf DIR");
  auto loaded = load_model(o.source, o.tokenizer, torch::kCPU);
  // Nothing the user wrote is replaced: an existing directory must hold only an earlier export.
  const std::vector<std::string> ours = {"config.json", "model.safetensors",  "tokenizer.json", "vocab.json",
                                         "merges.txt",  "tokenizer.tiktoken", "tokenizer.model"};
  if (path_exists(o.to_hf)) {
    if (!is_directory(o.to_hf)) throw Error("--to-hf", "'" + o.to_hf + "' is a file", "a directory (made if missing)");
    for (const auto& name : list_directory(o.to_hf)) {
      const bool known = std::find(ours.begin(), ours.end(), name) != ours.end();
      if (!known) {
        throw Error("--to-hf", o.to_hf + " holds " + name + ", which an export does not write",
                    "an empty or new directory");
      }
      if (!o.overwrite) {
        throw Error("--to-hf", o.to_hf + " already holds " + name, "--overwrite to replace an earlier export");
      }
    }
  }
  save_hf_gpt2(o.to_hf, loaded.model, loaded.metadata.tokenizer.end_of_text_id);
  write_tokenizer_files(loaded.metadata, o.to_hf);
  std::printf("exported %s to %s (Hugging Face GPT-2: config.json, model.safetensors%s)\n", loaded.description.c_str(),
              o.to_hf.c_str(),
              loaded.metadata.tokenizer_files.empty() ? "; no tokenizer files, the source had none" : ", tokenizer");
  return 0;
}

}  // namespace

CommandAction add_sample_command(CLI::App& app) {
  auto o = std::make_shared<SampleOptions>();
  CLI::App* cmd = app.add_subcommand("sample", "Generate text from a trained model");
  add_model_options(*cmd, o->model);
  cmd->add_option("--prompt", o->prompt, "Text to continue (empty: start after an end-of-text token)");
  cmd->add_option("--max-new-tokens", o->sampling.max_new_tokens, "Tokens to generate per sample")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 30));
  cmd->add_option("--temperature", o->sampling.temperature, "Softmax temperature; 0 picks the likeliest token")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", o->sampling.top_k, "Sample among the k likeliest tokens (0: all)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 30));
  cmd->add_option("--top-p", o->sampling.top_p, "Sample among the likeliest tokens holding this much probability")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->sampling.seed, "Random seed of the sampling")->capture_default_str();
  cmd->add_option("--num-samples", o->num_samples, "Samples to draw (generated side by side)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{4096}));
  cmd->add_flag("--no-cache", o->no_cache, "Run the whole sequence again for every token (no key/value cache)");
  cmd->add_flag("--ignore-end-of-text", o->ignore_end_of_text, "Go on past an end-of-text token");
  return [o] { return run_sample(*o); };
}

CommandAction add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Loss and perplexity on text or shards; HellaSwag-style accuracy");
  add_model_options(*cmd, o->model);
  cmd->add_option("--text-file", o->text_file, "A text file, tokenized with the model's tokenizer");
  cmd->add_option("--dataset-file", o->dataset, "A shard set (aios prepare)");
  cmd->add_option("--split", o->split, "Which split of --dataset-file")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "val"}));
  cmd->add_option("--hellaswag", o->multiple_choice,
                  "A HellaSwag-format JSONL file: multiple-choice accuracy (acc and acc_norm)");
  cmd->add_option("--window-size", o->window,
                  "Predictions per window (default: the checkpoint's training window, else the model's positions)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 30));
  cmd->add_option("--batch-size", o->batch_size, "Windows per forward pass")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  cmd->add_option("--max-tokens", o->max_tokens, "Evaluate only the first this many tokens (0: all)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 50));
  return [o] { return run_eval(*o); };
}

CommandAction add_export_command(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand("export", "Write a model as a Hugging Face GPT-2 directory, tokenizer included");
  cmd->add_option("source", o->source, kSourceHelp)->required();
  cmd->add_option("--to-hf", o->to_hf, "Directory to write (config.json, model.safetensors, tokenizer files)")
      ->required();
  cmd->add_option("--tokenizer", o->tokenizer, "A tokenizer to include instead of the source's own");
  cmd->add_flag("--overwrite", o->overwrite, "Replace the files of an earlier export in --to-hf");
  return [o] { return run_export(*o); };
}

}  // namespace aios::cli
