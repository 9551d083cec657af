#!/usr/bin/env python3
"""Writes tests/reference/bpe_tiny/: a small GPT-2-style byte-level BPE trained by Hugging Face
`tokenizers` (tokenizer.json, and the same as vocab.json + merges.txt) and expected.json with a
sample of varied text and the ids `tokenizers` gives it. tests/test_bpe_tokenizer.cpp must
reproduce them without Python. Run where `tokenizers` and `tiktoken` are installed:
    python3 tests/reference/make_bpe_fixture.py
"""
import json
import os

from check_bpe_tokenizers import train_hf, varied_text

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "bpe_tiny")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    tokenizer = train_hf(varied_text(300_000, seed=11), None, vocab_size=600)
    tokenizer.save(os.path.join(OUT, "tokenizer.json"))
    tokenizer.model.save(OUT)
    sample = varied_text(12_000, seed=12)
    ids = tokenizer.encode(sample, add_special_tokens=False).ids
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"text": sample, "ids": ids, "end_of_text_id": tokenizer.token_to_id("<|endoftext|>")}, f,
                  ensure_ascii=True)


if __name__ == "__main__":
    main()
