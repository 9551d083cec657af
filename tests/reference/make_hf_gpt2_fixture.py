#!/usr/bin/env python3
"""Writes tests/reference/hf_gpt2_tiny/: a tiny random GPT-2 in Hugging Face format
(config.json + model.safetensors) and expected.safetensors with input ids and HF's logits.

Run where `transformers` is installed (pip install transformers safetensors):
    python3 tests/reference/make_hf_gpt2_fixture.py
The C++ test (tests/test_hf_gpt2.cpp) loads the model with aios and must reproduce the logits.
"""
import os

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hf_gpt2_tiny")


def main() -> None:
    torch.manual_seed(1234)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=97, n_positions=24,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config).eval()
    # Random init keeps biases and LayerNorm at 0/1; perturb them so the test sees every tensor.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(OUT, safe_serialization=True)
    input_ids = torch.randint(0, 97, (2, 16), dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids).logits.float().contiguous()
    save_file({"input_ids": input_ids, "logits": logits}, os.path.join(OUT, "expected.safetensors"))
    for name in os.listdir(OUT):
        if name not in ("config.json", "model.safetensors", "expected.safetensors"):
            os.remove(os.path.join(OUT, name))


if __name__ == "__main__":
    main()
