#!/usr/bin/env python3
"""PyTorch-eager reference for `aios train`: the same GPT-2, hyper-parameters, schedule,
accumulation rule and token windows (a port of aios's WindowSampler reading the same HDF5
shards), started from the same safetensors weights. Writes the same JSONL fields as aios.
Memory techniques are PyTorch's own equivalents: --amp (torch.autocast bf16), --checkpointing
(torch.utils.checkpoint per block, non-reentrant) and --optimizer bnb-8bit (bitsandbytes'
AdamW8bit, if importable). --compile runs the model under torch.compile; AdamW is the fused
kernel on CUDA.

  reference_trainer.py init  --out DIR [--model gpt2] [--vocab-size 50257] [--seed 1337]
  reference_trainer.py train --init DIR --dataset-file SHARDS --log-file F.jsonl [options]
  reference_trainer.py max-batch --init DIR --dataset-file SHARDS [options]   largest power-of-two
      micro-batch that trains 2 steps, printed as JSON
"""
import argparse
import json
import math
import os
import time

import h5py
import torch
import torch.nn as nn
import torch.utils.checkpoint
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

PRESETS = {"tiny": (4, 4, 128), "gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024),
           "gpt2-large": (36, 20, 1280), "gpt2-xl": (48, 25, 1600)}
CONV1D = ("c_attn.weight", "c_proj.weight", "c_fc.weight")


def rotary(x, theta=10000.0):
    """aios's apply_rotary (src/model/gpt.cpp): halves rotated, angles in float64."""
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    inv_freq = theta ** (-torch.arange(0, half, dtype=torch.float64, device=x.device) * (2.0 / d))
    angles = torch.outer(torch.arange(t, dtype=torch.float64, device=x.device), inv_freq)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


class Block(nn.Module):
    rope = False

    def __init__(self, c):
        super().__init__()
        self.n_head = c["n_head"]
        e = c["n_embd"]
        self.ln_1 = nn.LayerNorm(e, eps=1e-5)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(e, 3 * e)
        self.attn.c_proj = nn.Linear(e, e)
        self.ln_2 = nn.LayerNorm(e, eps=1e-5)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(e, 4 * e)
        self.mlp.c_proj = nn.Linear(4 * e, e)

    def forward(self, x):
        b, t, e = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).view(b, t, 3, self.n_head, e // self.n_head).permute(2, 0, 3, 1, 4)
        if self.rope:
            q, k = rotary(q), rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn.c_proj(y.transpose(1, 2).reshape(b, t, e))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.h = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=1e-5)

    checkpointing = False
    rope = False  # rotary positions (aios --pos rope): the learned table goes unused

    def loss_sum(self, idx, targets):
        x = self.wte(idx) if self.rope else self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False) if self.checkpointing else block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="sum")


# ---- aios's WindowSampler, bit for bit (src/data/window_sampler.cpp) ----
M64 = (1 << 64) - 1


def mix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


class Sampler:
    def __init__(self, windows, seed):
        self.n, self.seed, self.half = windows, seed, 0
        while (1 << (2 * self.half)) < windows:
            self.half += 1

    def window_at(self, position):
        index, epoch = position % self.n, position // self.n
        if self.n == 1:
            return index
        mask = (1 << self.half) - 1
        key = mix(self.seed ^ mix((epoch + 0x5EED) & M64))
        x = index
        while True:
            left, right = x >> self.half, x & mask
            for r in range(6):
                left, right = right, left ^ (mix(right ^ key ^ (r << 56)) & mask)
            x = (left << self.half) | right
            if x < self.n:
                return x


class Windows:
    def __init__(self, directory, window, seed):
        manifest = json.load(open(os.path.join(directory, "manifest.json")))
        self.files, self.first, self.t = [], [0], window
        for shard in manifest["shards"]:
            if shard["split"] == "train":
                self.files.append(h5py.File(os.path.join(directory, shard["file"]), "r")["tokens"])
                self.first.append(self.first[-1] + max(0, (shard["tokens"] - 1) // window))
        self.sampler, self.cursor = Sampler(self.first[-1], seed), 0

    def next(self, count):
        rows = []
        for i in range(count):
            w = self.sampler.window_at(self.cursor + i)
            s = max(j for j in range(len(self.files)) if self.first[j] <= w)
            start = (w - self.first[s]) * self.t
            rows.append(torch.from_numpy(self.files[s][start:start + self.t + 1].astype("int64")))
        self.cursor += count
        return torch.stack(rows)


def write_init(args):
    n_layer, n_head, n_embd = PRESETS[args.model]
    c = {"model_type": "gpt2", "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd,
         "vocab_size": args.vocab_size, "n_positions": 1024, "n_ctx": 1024,
         "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
    torch.manual_seed(args.seed)
    model = Gpt(c)
    for name, p in model.named_parameters():  # GPT-2 init, as aios's initialize_weights
        with torch.no_grad():
            if name.endswith(".bias"):
                p.zero_()
            elif "ln_" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02)
    os.makedirs(args.out, exist_ok=True)
    json.dump(c, open(os.path.join(args.out, "config.json"), "w"), indent=2)
    save_file({k: (v.t() if k.endswith(CONV1D) else v).contiguous() for k, v in model.state_dict().items()},
              os.path.join(args.out, "model.safetensors"))


def build(args, device):
    c = json.load(open(os.path.join(args.init, "config.json")))
    model = Gpt(c)
    state = {k: (v.t() if k.endswith(CONV1D) else v) for k, v in load_file(os.path.join(args.init, "model.safetensors")).items()}
    model.load_state_dict(state)
    model.checkpointing = args.checkpointing
    model.rope = args.pos == "rope"
    for block in model.h:
        block.rope = model.rope
    model.to(device)
    params = [(n, p) for n, p in model.named_parameters() if not (model.rope and n == "wpe.weight")]
    if model.rope:
        model.wpe.weight.requires_grad_(False)
    decay = [p for n, p in params if p.dim() >= 2 and n not in ("wte.weight", "wpe.weight")]
    other = [p for n, p in params if not (p.dim() >= 2 and n not in ("wte.weight", "wpe.weight"))]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": other, "weight_decay": 0.0}]
    if args.optimizer == "bnb-8bit":
        import bitsandbytes as bnb
        opt = bnb.optim.AdamW8bit(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    else:
        # The fused kernel on CUDA: the fastest stock AdamW, as a user tuning for speed would pick.
        opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")
    if args.compile:
        # The model's forward and loss under Inductor (the backward follows); the optimizer stays fused eager.
        model.loss_sum = torch.compile(model.loss_sum)
    return model, opt


def train_step(model, opt, data, args, device, batch_size, accumulation, lr):
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    tokens_per_step = batch_size * accumulation * args.window_size
    total = torch.zeros((), device=device, dtype=torch.float64)
    for _ in range(accumulation):
        batch = data.next(batch_size).pin_memory().to(device, non_blocking=True) if device.type == "cuda" \
            else data.next(batch_size)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            loss = model.loss_sum(batch[:, :-1], batch[:, 1:]) / tokens_per_step
        loss.backward()
        total += loss.detach().double()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
    opt.step()
    return total.item(), norm


def train(args):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, opt = build(args, device)
    data = Windows(args.dataset_file, args.window_size, args.seed)
    tokens_per_step = args.batch_size * args.gradient_accumulation_steps * args.window_size
    log = open(args.log_file, "w")
    log.write(json.dumps({"type": "config", "amp": args.amp, "checkpointing": args.checkpointing,
                          "optimizer": args.optimizer, "batch_size": args.batch_size, "compile": args.compile,
                          "torch": torch.__version__}) + "\n")
    profiler = None
    for step in range(args.steps):
        if args.profile_file and step + 1 == args.profile_from:  # the same steps aios's --profile-* trace
            profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU] +
                                              ([torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else []),
                                              record_shapes=True)
            profiler.__enter__()
        t0 = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        if step < args.warmup_steps:
            lr = args.lr * (step + 1) / args.warmup_steps
        else:
            progress = min(1.0, (step - args.warmup_steps) / max(1, args.steps - args.warmup_steps - 1))
            lr = args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))
        value, norm = train_step(model, opt, data, args, device, args.batch_size, args.gradient_accumulation_steps, lr)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        record = {"type": "step", "step": step + 1, "loss": value, "lr": lr, "grad_norm": norm,
                  "tokens_per_s": tokens_per_step / dt, "step_time_ms": dt * 1e3}
        if device.type == "cuda":
            record["peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
        log.write(json.dumps(record) + "\n")
        log.flush()
        if profiler is not None and step + 1 == args.profile_from + args.profile_steps - 1:
            profiler.__exit__(None, None, None)
            profiler.export_chrome_trace(args.profile_file)
            profiler = None


def max_batch(args):
    """Doubles the micro-batch from 1 until two training steps no longer fit; prints the last fit."""
    device = torch.device("cuda")
    model, opt = build(args, device)
    data = Windows(args.dataset_file, args.window_size, args.seed)
    fit, batch = 0, 1
    while batch <= args.batch_limit:
        try:
            for _ in range(2):
                train_step(model, opt, data, args, device, batch, 1, args.lr)
            torch.cuda.synchronize()
            fit, batch = batch, batch * 2
        except torch.OutOfMemoryError:
            break
    opt.zero_grad(set_to_none=True)
    torch.cuda.empty_cache()
    print(json.dumps({"largest_micro_batch": fit, "tried_up_to": batch, "limit": args.batch_limit}))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init")
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="gpt2", choices=sorted(PRESETS))
    p.add_argument("--vocab-size", type=int, default=50257)
    p.add_argument("--seed", type=int, default=1337)
    for name in ("train", "max-batch"):
        p = sub.add_parser(name)
        add_train_arguments(p)
    args = parser.parse_args()
    {"init": write_init, "train": train, "max-batch": max_batch}[args.command](args)


def add_train_arguments(p):
    p.add_argument("--init", required=True)
    p.add_argument("--dataset-file", required=True)
    p.add_argument("--log-file", default="", help="train: JSONL metrics")
    p.add_argument("--window-size", type=int, default=1024)
    p.add_argument("--pos", default="learned", choices=["learned", "rope"],
                   help="rope: rotary positions as aios --pos rope (windows past the learned table)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--min-lr", type=float, default=6e-5)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--amp", action="store_true", help="torch.autocast(bfloat16)")
    p.add_argument("--checkpointing", action="store_true", help="torch.utils.checkpoint around each block")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "bnb-8bit"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model's forward and loss")
    p.add_argument("--batch-limit", type=int, default=1024, help="max-batch: stop doubling here")
    p.add_argument("--profile-file", default="", help="train: Chrome trace of the profiled steps")
    p.add_argument("--profile-from", type=int, default=5, help="first profiled step (1-based)")
    p.add_argument("--profile-steps", type=int, default=3)


if __name__ == "__main__":
    main()
