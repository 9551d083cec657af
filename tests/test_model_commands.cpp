// Using a trained model: sampling, evaluation and export, against what transformers computed from
// tests/reference/hf_gpt2_bpe (made by tests/reference/make_hf_gpt2_bpe_fixture.py); and the
// tokenizer identity that keeps a pretrained model from training on another tokenizer's ids.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "infer/evaluate.h"
#include "infer/generate.h"
#include "infer/model_source.h"
#include "model/safetensors.h"
#include "test_support.h"

#if AIOS_WITH_PCRE2
namespace aios {
namespace {

using testing::run_aios;

const std::string kModel = std::string(AIOS_SOURCE_DIR) + "/tests/reference/hf_gpt2_bpe";

nlohmann::json expected() { return nlohmann::json::parse(testing::read_file(kModel + "/expected.json")); }

std::vector<std::uint32_t> ids_of(const nlohmann::json& array) { return array.get<std::vector<std::uint32_t>>(); }

TEST(Sample, GreedyTokensEqualTransformersGenerateWithAndWithoutTheCache) {
  auto loaded = load_model(kModel, "", torch::kCPU);
  ASSERT_TRUE(loaded.tokenizer);
  const auto want = expected()["greedy"];
  std::vector<std::uint32_t> prompt;
  loaded.tokenizer->encode(want["prompt"].get<std::string>(), prompt);
  ASSERT_EQ(prompt, ids_of(want["prompt_ids"]));
  SamplingOptions options;
  options.temperature = 0;
  options.max_new_tokens = static_cast<std::int64_t>(want["new_ids"].size());
  for (const bool cache : {true, false}) {
    options.use_cache = cache;
    const auto generation = generate(loaded.model, prompt, 1, options);
    EXPECT_EQ(generation.tokens.at(0), ids_of(want["new_ids"])) << (cache ? "with" : "without") << " the cache";
    // The cache runs each new position once; without it, the whole sequence runs for every token.
    const auto n = static_cast<std::int64_t>(prompt.size()), m = options.max_new_tokens;
    EXPECT_EQ(generation.forward_positions, cache ? n + m - 1 : m * n + m * (m - 1) / 2);
  }
}

TEST(Sample, TheCacheDrawsTheSameSamplesAsRecomputingAndTheSeedDecides) {
  auto loaded = load_model(kModel, "", torch::kCPU);
  SamplingOptions options;
  options.temperature = 0.9;
  options.top_k = 50;
  options.top_p = 0.95;
  options.max_new_tokens = 40;
  options.seed = 7;
  const std::vector<std::uint32_t> prompt = {52, 265};
  const auto cached = generate(loaded.model, prompt, 3, options);
  options.use_cache = false;
  const auto recomputed = generate(loaded.model, prompt, 3, options);
  EXPECT_EQ(cached.tokens, recomputed.tokens);
  EXPECT_NE(cached.tokens[0], cached.tokens[1]) << "samples of one call differ";
  options.seed = 8;
  EXPECT_NE(generate(loaded.model, prompt, 3, options).tokens, cached.tokens);
  // top_k = 1 is greedy whatever the temperature.
  options.top_k = 1;
  SamplingOptions greedy = options;
  greedy.temperature = 0;
  EXPECT_EQ(generate(loaded.model, prompt, 1, options).tokens, generate(loaded.model, prompt, 1, greedy).tokens);
}

// On a GPU in fp32 the greedy tokens are transformers' too; under bf16 autocast the cache and the
// recomputation see the same rounded weights and agree with each other.
TEST(Sample, CudaGreedyTokensEqualTransformersInFp32AndTheCacheAgreesUnderBf16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  auto loaded = load_model(kModel, "", torch::Device(torch::kCUDA, 0));
  const auto want = expected()["greedy"];
  SamplingOptions options;
  options.temperature = 0;
  options.max_new_tokens = static_cast<std::int64_t>(want["new_ids"].size());
  EXPECT_EQ(generate(loaded.model, ids_of(want["prompt_ids"]), 1, options).tokens.at(0), ids_of(want["new_ids"]));
  options.precision = {true, at::kBFloat16};
  options.temperature = 0.9;
  options.max_new_tokens = 30;
  const auto cached = generate(loaded.model, ids_of(want["prompt_ids"]), 4, options);
  options.use_cache = false;
  const auto recomputed = generate(loaded.model, ids_of(want["prompt_ids"]), 4, options);
  // bf16 attention over a cache and over the whole sequence may round apart later on; the first
  // draw comes from the same prompt pass in both.
  for (std::size_t row = 0; row < 4; ++row) {
    ASSERT_EQ(cached.tokens[row].size(), 30u);
    EXPECT_EQ(cached.tokens[row].front(), recomputed.tokens[row].front()) << "row " << row;
  }
}

TEST(Eval, LossOfATextEqualsTransformers) {
  auto loaded = load_model(kModel, "", torch::kCPU);
  const auto want = expected()["eval"];
  std::vector<std::uint32_t> ids;
  loaded.tokenizer->encode(want["text"].get<std::string>(), ids);
  const auto loss = evaluate_tokens(loaded.model, ids, want["window"].get<std::int64_t>(), 2, MixedPrecision{});
  EXPECT_EQ(loss.tokens, want["tokens"].get<std::int64_t>());
  // float32 logits against transformers' float64 sums: 1e-5 relative covers the rounding.
  EXPECT_NEAR(loss.mean(), want["mean_loss"].get<double>(), 1e-5 * want["mean_loss"].get<double>());
  // Batching windows does not change the sum.
  EXPECT_NEAR(evaluate_tokens(loaded.model, ids, 64, 1, MixedPrecision{}).loss_sum, loss.loss_sum, 1e-3);
}

TEST(Eval, HellaSwagChoicesEqualAnIndependentPythonComputation) {
  auto loaded = load_model(kModel, "", torch::kCPU);
  const auto items = read_hellaswag_jsonl(kModel + "/hellaswag.jsonl");
  const auto result = evaluate_multiple_choice(loaded.model, *loaded.tokenizer, items, MixedPrecision{});
  const auto want = expected()["hellaswag"];
  EXPECT_EQ(result.chosen, want["chosen"].get<std::vector<std::int64_t>>());
  EXPECT_EQ(result.chosen_normalized, want["chosen_normalized"].get<std::vector<std::int64_t>>());
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < items.size(); ++i) correct += result.chosen[i] == want["labels"][i].get<std::int64_t>();
  EXPECT_EQ(result.correct, correct);
}

TEST(Eval, AMalformedHellaSwagLineIsNamed) {
  testing::ScratchDir dir;
  testing::write_file(dir / "h.jsonl", R"({"ctx": "a", "endings": ["b", "c"], "label": 0})"
                                       "\n"
                                       R"({"ctx": "a", "endings": ["b"], "label": 0})"
                                       "\n");
  EXPECT_NE(testing::error_of([&] { read_hellaswag_jsonl(dir / "h.jsonl"); }).find("h.jsonl:2: has fewer than two"),
            std::string::npos);
  testing::write_file(dir / "g.jsonl", "{\"ctx\": \"a\", \"endings\": [\"b\", \"c\"], \"label\": 5}\n");
  EXPECT_NE(testing::error_of([&] { read_hellaswag_jsonl(dir / "g.jsonl"); }).find("g.jsonl:1: has label 5"),
            std::string::npos);
  testing::write_file(dir / "f.jsonl", "not json\n");
  EXPECT_NE(testing::error_of([&] { read_hellaswag_jsonl(dir / "f.jsonl"); }).find("f.jsonl:1: is not a HellaSwag"),
            std::string::npos);
}

// The whole path a user takes: shards with the model's tokenizer, fine-tuning from the Hugging
// Face directory, sampling and evaluating the checkpoint, exporting it back.
class FineTuneWorkflow : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string text;
    for (int i = 0; i < 40; ++i) text += expected()["eval"]["text"].get<std::string>();
    testing::write_file(dir_ / "corpus/a.txt", text);
    const auto prepared = run_aios("prepare " + (dir_ / "corpus") + " --tokenizer " + kModel + " --output " +
                                   (dir_ / "set") + " --val-fraction 0.1");
    ASSERT_EQ(prepared.status, 0) << prepared.output;
  }
  std::string train(const std::string& run, const std::string& extra) {
    const auto trained = run_aios("train --dataset-file " + (dir_ / "set") + " --init-from " + kModel +
                                  " --window-size 32 --batch-size 2 --warmup-steps 1 --device cpu --no-amp "
                                  "--eval-batches 0 --out-dir " +
                                  (dir_ / run) + " " + extra);
    EXPECT_EQ(trained.status, 0) << trained.output;
    return trained.output;
  }
  testing::ScratchDir dir_;
};

TEST_F(FineTuneWorkflow, CheckpointSamplesEvaluatesAndExportsWithItsTokenizer) {
  // Samples and multiple-choice accuracy during training, printed and in the JSONL.
  const std::string output = train("run",
                                   "--steps 2 --sample-every 1 --sample-prompt 'The model' --sample-tokens 6 "
                                   "--eval-interval 2 --eval-hellaswag " +
                                       kModel + "/hellaswag.jsonl --log-file " + (dir_ / "run.jsonl"));
  EXPECT_NE(output.find("sample at step 1: \"The model"), std::string::npos) << output;
  std::istringstream lines(testing::read_file(dir_ / "run.jsonl"));
  int samples = 0, accuracies = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto record = nlohmann::json::parse(line);
    if (record.value("type", "") != "step") continue;
    samples += record.contains("sample") && record["sample"].get<std::string>().rfind("The model", 0) == 0;
    if (record.contains("hellaswag_acc")) {
      ++accuracies;
      EXPECT_GE(record["hellaswag_acc_norm"].get<double>(), 0.0);
    }
  }
  EXPECT_EQ(samples, 2);
  EXPECT_EQ(accuracies, 1);
  // The checkpoint alone knows its model and tokenizer.
  const auto sampled = run_aios("sample " + (dir_ / "run") + " --prompt 'The model' --max-new-tokens 8 --seed 3");
  ASSERT_EQ(sampled.status, 0) << sampled.output;
  EXPECT_EQ(sampled.output.rfind("aios: model " + (dir_ / "run/ckpt-00000002.pt") + " (step 2)", 0), 0u)
      << sampled.output;
  EXPECT_NE(sampled.output.find("\nThe model"), std::string::npos) << sampled.output;
  const auto evaluated = run_aios("eval " + (dir_ / "run") + " --dataset-file " + (dir_ / "set"));
  ASSERT_EQ(evaluated.status, 0) << evaluated.output;
  EXPECT_NE(evaluated.output.find("(val): "), std::string::npos) << evaluated.output;

  const auto exported = run_aios("export " + (dir_ / "run") + " --to-hf " + (dir_ / "hf"));
  ASSERT_EQ(exported.status, 0) << exported.output;
  for (const char* name : {"config.json", "model.safetensors", "tokenizer.json"}) {
    EXPECT_TRUE(path_exists(dir_ / ("hf/" + std::string(name)))) << name;
  }
  EXPECT_NE(testing::read_file(dir_ / "hf/model.safetensors").find(R"("__metadata__":{"format":"pt"})"),
            std::string::npos);
  // The export is the checkpoint: the same logits, the same tokenizer.
  auto from_checkpoint = load_model(dir_ / "run", "", torch::kCPU);
  auto from_export = load_model(dir_ / "hf", "", torch::kCPU);
  const auto tokens = torch::tensor({52, 265, 221, 368, 7, 51}, torch::kLong).unsqueeze(0);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(from_checkpoint.model->forward(tokens), from_export.model->forward(tokens)));
  EXPECT_EQ(from_export.tokenizer->hash(), from_checkpoint.tokenizer->hash());
  // A second export does not write over the first unasked, nor over what it did not write.
  const auto again = run_aios("export " + (dir_ / "run") + " --to-hf " + (dir_ / "hf"));
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.output.find("already holds"), std::string::npos) << again.output;
  testing::write_file(dir_ / "hf/notes.txt", "mine");
  const auto over = run_aios("export " + (dir_ / "run") + " --to-hf " + (dir_ / "hf") + " --overwrite");
  EXPECT_NE(over.output.find("holds notes.txt, which an export does not write"), std::string::npos) << over.output;
  EXPECT_EQ(testing::read_file(dir_ / "hf/notes.txt"), "mine");
}

TEST_F(FineTuneWorkflow, ShardsOfAnotherTokenizerAreRefusedByInitFromAndByResume) {
  ASSERT_EQ(run_aios("prepare " + (dir_ / "corpus") + " --output " + (dir_ / "bytes")).status, 0);
  auto refused = run_aios("train --dataset-file " + (dir_ / "bytes") + " --init-from " + kModel +
                          " --window-size 32 --steps 1 --warmup-steps 1 --device cpu --out-dir " + (dir_ / "x"));
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.output.find("holds ids of tokenizer byte:byte-v1, vocab 256, but --init-from " + kModel +
                                " reads ids of bpe:"),
            std::string::npos)
      << refused.output;
  EXPECT_EQ(std::count(refused.output.begin(), refused.output.end(), '\n'), 1) << refused.output;

  // Resuming onto the same tokenizer's other shards goes on from the start of that data, and says so.
  train("run", "--steps 2");
  // Evaluation refuses them too: the model would read the byte ids as its own.
  const auto evaluated = run_aios("eval " + (dir_ / "run") + " --dataset-file " + (dir_ / "bytes"));
  EXPECT_EQ(evaluated.status, 1);
  EXPECT_NE(evaluated.output.find("holds ids of tokenizer byte:byte-v1 (vocab 256), the model reads bpe:"),
            std::string::npos)
      << evaluated.output;
  // An export with --tokenizer carries that tokenizer's files, not the checkpoint's.
  ASSERT_EQ(run_aios("export " + (dir_ / "run") + " --to-hf " + (dir_ / "as-bytes") + " --tokenizer byte").status, 0);
  EXPECT_TRUE(path_exists(dir_ / "as-bytes/model.safetensors"));
  EXPECT_FALSE(path_exists(dir_ / "as-bytes/tokenizer.json"));
  ASSERT_EQ(run_aios("prepare " + (dir_ / "corpus") + " --tokenizer " + kModel + "/tokenizer.json --output " +
                     (dir_ / "set2") + " --val-fraction 0.2")
                .status,
            0);
  const auto resumed =
      run_aios("train --dataset-file " + (dir_ / "set2") + " --init-from " + kModel +
               " --window-size 32 --batch-size 2 --steps 3 --warmup-steps 1 --device cpu --no-amp --eval-batches 0"
               " --resume latest --out-dir " +
               (dir_ / "run"));
  EXPECT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("onto another dataset (" + (dir_ / "set") + " before, " + (dir_ / "set2") + " now)"),
            std::string::npos)
      << resumed.output;
}

TEST_F(FineTuneWorkflow, ResumeOntoShardsOfAnotherTokenizerIsRefused) {
  ASSERT_EQ(run_aios("prepare " + (dir_ / "corpus") + " --output " + (dir_ / "bytes")).status, 0);
  const std::string shape =
      " --model tiny --n-layer 1 --n-head 2 --n-embd 32 --vocab-size 600 --window-size 16"
      " --steps 2 --warmup-steps 1 --device cpu --no-amp --eval-batches 0 --out-dir " +
      (dir_ / "run");
  ASSERT_EQ(run_aios("train --dataset-file " + (dir_ / "bytes") + shape).status, 0);
  const auto refused = run_aios("train --dataset-file " + (dir_ / "set") + shape + " --resume latest");
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.output.find("was trained on ids of tokenizer byte:byte-v1 (dataset " + (dir_ / "bytes") +
                                "), but this run's dataset " + (dir_ / "set") + " holds ids of bpe:"),
            std::string::npos)
      << refused.output;
}

// Weights without tokenizer files (what bench/reference_trainer.py init writes) are held to the
// data's vocabulary, padded or not: GPT-2's 50,257 ids train a model of 50,304 rows; byte ids do not.
TEST_F(FineTuneWorkflow, WeightsWithoutTokenizerFilesTakeTheDataVocabularyPaddedButNoOther) {
  ASSERT_EQ(run_aios("prepare " + (dir_ / "corpus") + " --output " + (dir_ / "bytes")).status, 0);
  auto config = nlohmann::json::parse(testing::read_file(kModel + "/config.json"));
  const std::int64_t vocab = config["vocab_size"], padded = vocab + 40;
  config["vocab_size"] = padded;
  testing::write_file(dir_ / "padded/config.json", config.dump());
  auto tensors = read_safetensors(kModel + "/model.safetensors");
  auto& wte = tensors.at("transformer.wte.weight");
  wte = torch::cat({wte, torch::zeros({padded - vocab, wte.size(1)}, wte.options())});
  write_safetensors(dir_ / "padded/model.safetensors", tensors, {{"format", "pt"}});
  const std::string run =
      " --init-from " + (dir_ / "padded") +
      " --window-size 32 --batch-size 2 --steps 1 --warmup-steps 1 --device cpu --no-amp --eval-batches 0 --out-dir ";
  const auto trained = run_aios("train --dataset-file " + (dir_ / "set") + run + (dir_ / "run"));
  EXPECT_EQ(trained.status, 0) << trained.output;
  const auto refused = run_aios("train --dataset-file " + (dir_ / "bytes") + run + (dir_ / "bytes-run"));
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.output.find("has a vocabulary of " + std::to_string(padded) +
                                " (and no tokenizer files to compare; accepted: 256 to 383, the data's padded)"),
            std::string::npos)
      << refused.output;
  EXPECT_EQ(std::count(refused.output.begin(), refused.output.end(), '\n'), 1) << refused.output;
}

TEST(ModelCommands, BadInputIsOneLine) {
  testing::ScratchDir dir;
  const auto one_line = [](const testing::Run& run) {
    return run.status != 0 && std::count(run.output.begin(), run.output.end(), '\n') == 1;
  };
  auto missing = run_aios("sample " + (dir / "nothing"));
  EXPECT_TRUE(one_line(missing)) << missing.output;
  EXPECT_NE(missing.output.find("nothing: does not exist"), std::string::npos) << missing.output;
  auto invalid = run_aios("sample " + kModel + " --prompt \"$(printf '\\377\\376')\"");
  EXPECT_TRUE(one_line(invalid)) << invalid.output;
  EXPECT_NE(invalid.output.find("--prompt: is not valid UTF-8"), std::string::npos) << invalid.output;
  auto too_long = run_aios("sample " + kModel + " --max-new-tokens 100");
  EXPECT_NE(too_long.output.find("--max-new-tokens: 100 after a prompt"), std::string::npos) << too_long.output;
  testing::write_file(dir / "mine.bin", "mine");
  auto kept = run_aios("tokenize --text hello --output " + (dir / "mine.bin"));
  EXPECT_TRUE(one_line(kept)) << kept.output;
  EXPECT_NE(kept.output.find("--output: " + (dir / "mine.bin") + " already exists"), std::string::npos) << kept.output;
  EXPECT_EQ(testing::read_file(dir / "mine.bin"), "mine");
  testing::write_file(dir / "ckpt-00000001.pt", "not a checkpoint");
  auto damaged = run_aios("eval " + (dir / "ckpt-00000001.pt") + " --text-file /dev/null");
  EXPECT_TRUE(one_line(damaged)) << damaged.output;
}

}  // namespace
}  // namespace aios
#endif
