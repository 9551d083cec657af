#!/usr/bin/env python3
"""Writes tests/reference/hf_gpt2_bpe/: a tiny random GPT-2 in Hugging Face format with the byte-level
BPE of tests/reference/bpe_tiny, trained briefly (tokenizer.json, vocab.json, merges.txt), as a released GPT-2
directory is laid out, and expected.json with what transformers computes from it:
  * greedy: the prompt's ids and `generate`'s greedy continuation (every step's top two logits
    checked apart by more than float32 noise, so the argmax is not a coin toss);
  * eval: a text's mean token loss over windows of 64 predictions, each window starting afresh;
  * hellaswag: for hellaswag.jsonl, each item's choice by summed log-likelihood (acc) and by
    log-likelihood per character of the ending (acc_norm), as lm-evaluation-harness scores them.
tests/test_model_commands.cpp checks aios against these. Run where transformers is installed:
    python3 tests/reference/make_hf_gpt2_bpe_fixture.py
"""
import json
import os
import shutil

import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from check_bpe_tokenizers import varied_text

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hf_gpt2_bpe")
WINDOW = 64

HELLASWAG = [
    {"ctx": "The model learns", "endings": ["the text.", "a window of tokens", "42 steps", "über alles"], "label": 1},
    {"ctx": "A man is sitting on a roof. He", "endings": ["is using wrap to wrap a pair of skis.",
     "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
     "label": 3},
    {"ctx_a": "Then the gradient", "ctx_b": "flows back", "endings": ["through every layer", "日本語 text", "and stops"],
     "label": 0},
    {"ctx": "it's  a test ", "endings": ["of spaces", "of   runs", "😀 emoji"], "label": "2"},
    {"ctx": "Numbers: 1 2 3", "endings": ["4 5 6", "seven", "= = ="], "label": 0},
]


def context_of(item: dict) -> str:
    return item["ctx"] if "ctx" in item else item["ctx_a"] + " " + item["ctx_b"]


def score(model, tokenizer, context: str, ending: str) -> float:
    # lm-evaluation-harness: trailing spaces move from the context into the continuation; the
    # continuation's tokens are those of context+continuation past the context's token count.
    continuation = " " + ending
    stripped = context.rstrip(" ")
    continuation = context[len(stripped):] + continuation
    whole = tokenizer(stripped + continuation)["input_ids"]
    context_ids = tokenizer(stripped)["input_ids"]
    split = min(len(context_ids), len(whole) - 1)
    ids = torch.tensor([whole])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids).logits.double(), -1)[0]
    return sum(log_probs[i - 1, whole[i]].item() for i in range(split, len(whole)))


def main() -> None:
    torch.manual_seed(4321)
    os.makedirs(OUT, exist_ok=True)
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        shutil.copy(os.path.join(HERE, "bpe_tiny", name), os.path.join(OUT, name))
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=os.path.join(OUT, "tokenizer.json"))
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=len(tokenizer), n_positions=WINDOW,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=eot, eos_token_id=eot)
    # Trained for a few hundred steps on varied text, so that greedy continuations are not one
    # token repeated as a random model's are.
    model = GPT2LMHeadModel(config)
    data = torch.tensor(tokenizer(varied_text(100_000, seed=21))["input_ids"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(300):
        starts = torch.randint(0, len(data) - WINDOW - 1, (16,), generator=generator)
        batch = torch.stack([data[s:s + WINDOW] for s in starts])
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(OUT, safe_serialization=True)

    prompt = "The model learns a token"
    prompt_ids = tokenizer(prompt)["input_ids"]
    new_tokens = 24
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=None, pad_token_id=eot, output_scores=True, return_dict_in_generate=True)
    for step_scores in out.scores:
        top = step_scores[0].topk(2).values
        assert top[0] - top[1] > 1e-3, f"a greedy step is nearly tied ({top}); change the seed"
    greedy = out.sequences[0, len(prompt_ids):].tolist()

    text = ("The model learns a window of text, and the gradient flows back through every layer. "
            "It's 2026: 42 steps, 日本語 and über café, 😀 then   spaces\n\nand lines.\n") * 3
    ids = tokenizer(text)["input_ids"]
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, WINDOW):
            inputs = torch.tensor([ids[start:start + WINDOW]])
            targets = torch.tensor(ids[start + 1:start + WINDOW + 1])
            logits = model(inputs[:, :len(targets)]).logits[0].double()
            total += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
            count += len(targets)

    with open(os.path.join(OUT, "hellaswag.jsonl"), "w", encoding="utf-8") as f:
        for item in HELLASWAG:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    chosen, chosen_norm = [], []
    for item in HELLASWAG:
        scores = [score(model, tokenizer, context_of(item), e) for e in item["endings"]]
        chosen.append(max(range(len(scores)), key=lambda i: scores[i]))
        normalized = [s / len(e) for s, e in zip(scores, item["endings"])]
        chosen_norm.append(max(range(len(normalized)), key=lambda i: normalized[i]))

    expected = {"greedy": {"prompt": prompt, "prompt_ids": prompt_ids, "new_ids": greedy},
                "eval": {"text": text, "window": WINDOW, "tokens": count, "mean_loss": total / count},
                "hellaswag": {"chosen": chosen, "chosen_normalized": chosen_norm,
                              "labels": [int(item["label"]) for item in HELLASWAG]}}
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=True, indent=1)
    for name in os.listdir(OUT):
        if name not in ("config.json", "model.safetensors", "expected.json", "hellaswag.jsonl",
                        "tokenizer.json", "vocab.json", "merges.txt"):
            os.remove(os.path.join(OUT, name))


if __name__ == "__main__":
    main()
