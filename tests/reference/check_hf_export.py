#!/usr/bin/env python3
"""An aios checkpoint exported with `aios export --to-hf` opens in transformers and computes what
aios computes: fine-tunes the tiny GPT-2 of tests/reference/hf_gpt2_bpe for two steps, exports the
checkpoint, loads the export with transformers (model and tokenizer from the directory alone), and
compares the loss of a text (against `aios eval` of the checkpoint) and a greedy continuation
(against `aios sample`).

Usage: check_hf_export.py AIOS_BINARY WORK_DIR
"""
import json
import os
import subprocess
import sys

from scratch import fresh_scratch_dir

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "hf_gpt2_bpe")
WINDOW = 32


def run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stdout}{done.stderr}")
    return done.stdout


def main() -> int:
    aios, work = sys.argv[1], sys.argv[2]
    work = fresh_scratch_dir(work)
    os.makedirs(os.path.join(work, "corpus"))
    text = ("The model learns a window of text, and the gradient flows back through every layer. "
            "It's 2026: 42 steps, 日本語 and über café.\n") * 60
    with open(os.path.join(work, "corpus", "a.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    run(aios, "prepare", os.path.join(work, "corpus"), "--tokenizer", FIXTURE, "--output", os.path.join(work, "set"))
    run(aios, "train", "--dataset-file", os.path.join(work, "set"), "--init-from", FIXTURE, "--window-size", "32",
        "--batch-size", "2", "--steps", "2", "--warmup-steps", "1", "--device", "cpu", "--no-amp",
        "--eval-batches", "0", "--out-dir", os.path.join(work, "run"))
    export = os.path.join(work, "hf")
    run(aios, "export", os.path.join(work, "run"), "--to-hf", export)

    model = AutoModelForCausalLM.from_pretrained(export).eval()
    tokenizer = AutoTokenizer.from_pretrained(export)
    sample = text[:400]
    with open(os.path.join(work, "eval.txt"), "w", encoding="utf-8") as f:
        f.write(sample)
    ids = tokenizer(sample)["input_ids"]
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, WINDOW):
            targets = torch.tensor(ids[start + 1:start + WINDOW + 1])
            logits = model(torch.tensor([ids[start:start + len(targets)]])).logits[0].double()
            total += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
            count += len(targets)
    reference = total / count
    printed = run(aios, "eval", os.path.join(work, "run"), "--text-file", os.path.join(work, "eval.txt"),
                  "--window-size", str(WINDOW))
    loss = float(printed.split("loss ")[1].split(",")[0])
    ok = abs(loss - reference) <= 1e-5 * reference
    print(f"loss of the text: aios {loss:.6f}, transformers on the export {reference:.6f}: {'equal' if ok else 'DIFFER'}")

    prompt = "The model learns"
    with torch.no_grad():
        out = model.generate(torch.tensor([tokenizer(prompt)["input_ids"]]), max_new_tokens=12, do_sample=False,
                             eos_token_id=None, pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    expected = tokenizer.decode(out[0])
    got = run(aios, "sample", os.path.join(work, "run"), "--prompt", prompt, "--temperature", "0",
              "--max-new-tokens", "12", "--ignore-end-of-text").rstrip("\n")
    same = got == expected
    print(f"greedy continuation: {'equal' if same else 'DIFFER'}\n  aios:         {got!r}\n  transformers: {expected!r}")
    # docs/fine-tuning.md: a checkpoint opened from Python without aios.
    archive = torch.jit.load(os.path.join(work, "run", "ckpt-00000002.pt"), map_location="cpu")
    metadata = json.loads(archive.metadata)
    weights = {name: tensor for name, tensor in archive.model.named_parameters()}
    opened = (metadata["model"]["n_layer"] == model.config.n_layer and
              torch.equal(weights["wte.weight"], model.transformer.wte.weight) and
              torch.equal(weights["h.1.attn.c_attn.weight"].t(), model.transformer.h[1].attn.c_attn.weight))
    print(f"checkpoint opened with torch.jit.load: {'same tensors as the export' if opened else 'DIFFERENT'}")
    return 0 if ok and same and opened else 1


if __name__ == "__main__":
    sys.exit(main())
