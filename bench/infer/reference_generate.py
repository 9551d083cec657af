#!/usr/bin/env python3
"""Plain-PyTorch generation with the reference trainer's GPT-2 (bench/reference_trainer.py), as a
user of PyTorch would write it: bf16 autocast, top-k sampling on the GPU, and either a key/value
cache grown by torch.cat per token (as transformers' DynamicCache) or no cache (the whole sequence
again per token, as nanoGPT's sample.py). Prints one JSON line with tokens/s.

Usage: reference_generate.py --init DIR --batch B --prompt-tokens P --new-tokens N [--no-cache]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference_trainer import CONV1D, Gpt  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def block_step(block, x, cache):
    b, t, e = x.shape
    q, k, v = block.attn.c_attn(block.ln_1(x)).view(b, t, 3, block.n_head, e // block.n_head).permute(2, 0, 3, 1, 4)
    if cache is not None:
        if cache[0] is not None:
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        cache[0], cache[1] = k, v
    y = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
    x = x + block.attn.c_proj(y.transpose(1, 2).reshape(b, t, e))
    return x + block.mlp.c_proj(F.gelu(block.mlp.c_fc(block.ln_2(x)), approximate="tanh"))


def last_logits(model, idx, start, caches):
    x = model.wte(idx) + model.wpe(torch.arange(start, start + idx.shape[1], device=idx.device))
    for i, block in enumerate(model.h):
        x = block_step(block, x, caches[i] if caches is not None else None)
    return F.linear(model.ln_f(x[:, -1]), model.wte.weight).float()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--init", required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--no-cache", action="store_true")
    args = p.parse_args()
    device = torch.device("cuda")
    c = json.load(open(os.path.join(args.init, "config.json")))
    model = Gpt(c)
    model.load_state_dict({k: (v.t() if k.endswith(CONV1D) else v)
                           for k, v in load_file(os.path.join(args.init, "model.safetensors")).items()})
    model.to(device).eval()
    generator = torch.Generator(device=device).manual_seed(1)
    prompt = torch.randint(0, c["vocab_size"], (args.batch, args.prompt_tokens), device=device, generator=generator)

    def run() -> float:
        """Returns the seconds to the first token (the prompt's pass and one draw)."""
        tokens = prompt
        first = 0.0
        began = time.perf_counter()
        caches = None if args.no_cache else [[None, None] for _ in model.h]
        with torch.no_grad(), torch.autocast("cuda", torch.bfloat16):
            logits = last_logits(model, tokens, 0, caches)
            for step in range(args.new_tokens):
                values, indices = (logits / 0.8).topk(50, -1)
                choice = torch.multinomial(F.softmax(values, -1), 1, generator=generator)
                nxt = indices.gather(-1, choice)
                tokens = torch.cat([tokens, nxt], 1)
                if step == 0:
                    torch.cuda.synchronize()
                    first = time.perf_counter() - began
                if step + 1 == args.new_tokens:
                    break
                if caches is None:
                    logits = last_logits(model, tokens, 0, None)
                else:
                    logits = last_logits(model, nxt, tokens.shape[1] - 1, caches)
        torch.cuda.synchronize()
        return first

    run()  # warm-up: kernels chosen, allocator grown
    start = time.perf_counter()
    first = run()
    seconds = time.perf_counter() - start
    # As aios sample reports it: the first token apart, then the rate of the others.
    print(json.dumps({"impl": "pytorch-eager", "batch": args.batch, "cache": not args.no_cache,
                      "first_token_ms": first * 1e3,
                      "tokens_per_s": args.batch * (args.new_tokens - 1) / (seconds - first)}))


if __name__ == "__main__":
    main()
