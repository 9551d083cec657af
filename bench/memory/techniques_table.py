#!/usr/bin/env python3
"""Markdown table of bench/memory/techniques.sh's runs: per technique, aios and the
reference's tokens/s (median of steps 6..N), peak allocated memory, MFU and final loss, and the
ratios. MFU = 6N + 12·L·C·T FLOPs per token over the H100's dense peak (989.4 TFLOP/s bf16,
66.9 fp32), the same formula aios logs.
Usage: techniques_table.py OUT MODEL ROW..."""
import json
import os
import statistics
import sys


def load(path):
    if not os.path.exists(path):
        return None, None
    records = [json.loads(line) for line in open(path)]
    config = next((r for r in records if r.get("type") == "config"), {})
    return config, [r for r in records if r.get("type") == "step"]


def summary(steps, flops_per_token, peak_flops):
    if not steps:
        return None
    tps = statistics.median(s["tokens_per_s"] for s in (steps[5:] or steps))
    return {"tps": tps, "peak": max(s.get("peak_allocated_bytes", 0) for s in steps) / 2**30,
            "mfu": tps * flops_per_token / peak_flops, "loss": steps[-1]["loss"]}


def main():
    out, model, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
    header, _ = load(f"{out}/aios-{model}-{rows[0]}.jsonl")
    m = header["model"]
    window = header["options"]["data"]["window-size"]
    flops_per_token = 6 * m["parameters"] + 12 * m["n_layer"] * m["n_embd"] * window
    print(f"{model}: {m['parameters'] / 1e6:.0f}M parameters, window {window}, micro-batch "
          f"{header['options']['batch_size']}, {header['device']}\n")
    print("| technique | aios tokens/s | aios peak GiB | aios MFU | aios loss | reference tokens/s | reference peak GiB "
          "| reference MFU | reference loss | memory aios/ref | tokens/s aios/ref | aios attention | aios optimizer state |")
    print("|" + " --- |" * 13)
    for row in rows:
        config, steps = load(f"{out}/aios-{model}-{row}.jsonl")
        _, ref_steps = load(f"{out}/reference-{model}-{row}.jsonl")
        low_precision = "amp" in row or row == "all-together"
        peak = 989.4e12 if low_precision else 66.9e12
        a = summary(steps, flops_per_token, peak)
        r = summary(ref_steps, flops_per_token, peak)
        if a is None:
            print(f"| {row} | failed (see log) |" + " |" * 11)
            continue
        cells = [row, f"{a['tps']:,.0f}", f"{a['peak']:.2f}", f"{a['mfu']:.3f}", f"{a['loss']:.4f}"]
        if r:
            cells += [f"{r['tps']:,.0f}", f"{r['peak']:.2f}", f"{r['mfu']:.3f}", f"{r['loss']:.4f}",
                      f"{a['peak'] / r['peak']:.2f}", f"{a['tps'] / r['tps']:.2f}"]
        else:
            cells += ["no stock equivalent"] + ["-"] * 5
        state = config["memory_techniques"]["optimizer_state_bytes"] / 2**30
        cells += [config["attention"]["backend"], f"{config['memory_techniques']['optimizer']} {state:.2f} GiB"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
