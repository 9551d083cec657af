#!/usr/bin/env python3
"""Writes a synthetic English-like corpus for demos, tests and benchmarks.

The text comes from a small seeded grammar (subjects, verbs, objects, clauses), so a language
model can learn it quickly and its loss visibly falls; the same seed always gives the same bytes.
Usage: make_demo_corpus.py OUT_DIR [--bytes N] [--files K] [--seed S]
"""
import argparse
import os
import random

SUBJECTS = ["the model", "a small network", "every rank", "the optimizer", "our trainer", "the gradient",
            "each layer", "the tokenizer", "a careful engineer", "the scheduler", "the loss", "the batch"]
VERBS = ["reads", "updates", "writes", "checks", "shards", "measures", "recomputes", "scales", "averages",
         "predicts", "compresses", "saves"]
OBJECTS = ["the next token", "its memory", "eight bits per state", "the learning rate", "a checkpoint",
           "the whole window", "every parameter", "the validation split", "a long context", "the data order",
           "its activations", "the global batch"]
CLAUSES = ["before the step ends", "after each micro-batch", "on every GPU", "without losing a byte",
           "when memory runs out", "in half precision", "at the same time", "for a thousand steps", "",
           "", ""]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(CLAUSES)]
    text = " ".join(w for w in words if w)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "!", "?"])


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(2, 6))) + "\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--bytes", type=int, default=2_000_000, help="total size of the corpus")
    parser.add_argument("--files", type=int, default=4, help="number of files (documents)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    rng = random.Random(args.seed)
    per_file = args.bytes // args.files
    for index in range(args.files):
        chunks, size = [], 0
        while size < per_file:
            chunk = paragraph(rng)
            chunks.append(chunk)
            size += len(chunk)
        with open(os.path.join(args.out_dir, f"part-{index:03d}.txt"), "w", encoding="utf-8") as out:
            out.write("".join(chunks)[:per_file])


if __name__ == "__main__":
    main()
