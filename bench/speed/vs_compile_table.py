#!/usr/bin/env python3
"""One markdown table from the JSONL files of bench/speed/vs_compile.sh: per row the median
tokens/s and step time over the steps after the first 10, the peak allocated memory, MFU and the
ratio of tokens/s to the torch.compile row, and the loss at the last step; below it, the ratio of
aios's everything-on row to its fastest row (the issue's goal: 0.85x or more).
MFU comes from aios's own figure (its FLOPs per token and the GPU's peak); the reference rows,
the same model on the same GPU, take aios's FLOPs per token.
Usage: vs_compile_table.py TITLE "NAME=FILE.jsonl"..."""
import json
import statistics
import sys


def steps_of(path):
    try:
        return [r for r in map(json.loads, open(path)) if r.get("type") == "step"]
    except FileNotFoundError:
        return []


def main():
    title, rows = sys.argv[1], []
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        steps = steps_of(path)
        timed = steps[10:] or steps
        if not steps:
            rows.append((name, None, None, None, None, None))
            continue
        tps = statistics.median(s["tokens_per_s"] for s in timed)
        mfu_per_tps = [s["mfu"] / s["tokens_per_s"] for s in timed if s.get("mfu")]
        rows.append((name, tps, statistics.median(s["step_time_ms"] for s in timed),
                     max(s.get("peak_allocated_bytes", 0) for s in steps) / 2**30,
                     statistics.median(mfu_per_tps) if mfu_per_tps else None, steps[-1]["loss"]))
    flops_ratio = next((r[4] for r in rows if r[4]), None)  # MFU per token/s, from aios
    compiled = next((r[1] for r in rows if "compile" in r[0] and r[1]), None)
    print(f"{title}\n")
    print("| trainer | tokens/s | step (ms) | peak allocated (GiB) | MFU | vs torch.compile | loss at last step |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, tps, ms, peak, _, loss in rows:
        if tps is None:
            print(f"| {name} | failed | | | | | |")
            continue
        mfu = f"{100 * flops_ratio * tps:.1f} %" if flops_ratio else "n/a"
        ratio = f"{tps / compiled:.2f}x" if compiled else "n/a"
        print(f"| {name} | {tps:,.0f} | {ms:.1f} | {peak:.2f} | {mfu} | {ratio} | {loss:.4f} |")
    # Like against like: an everything-on row against the fastest aios row with or without the
    # CUDA graph as it ran.
    eager = ", no CUDA graph"
    aios = [r for r in rows if r[0].startswith("aios") and r[1]]
    for name, tps, *_ in aios:
        peers = [r for r in aios if r[0].endswith(eager) == name.endswith(eager)]
        fastest = max(peers, key=lambda r: r[1])
        if name.startswith("aios, everything on") and fastest[0] != name:
            print(f"\n{name}: {tps / fastest[1]:.2f}x of the fastest such aios row ({fastest[0]})")


if __name__ == "__main__":
    main()
