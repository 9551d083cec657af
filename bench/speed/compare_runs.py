#!/usr/bin/env python3
"""Prints a markdown table comparing two JSONL metric files (aios and the Python reference):
median tokens/s and step time over steps after the first 10, peak allocated memory, losses at
steps 1, 10 and the last, and the relative loss gap at the last step.
Usage: compare_runs.py AIOS.jsonl REFERENCE.jsonl"""
import json
import statistics
import sys


def load(path):
    return [r for r in map(json.loads, open(path)) if r.get("type") == "step"]


def row(name, steps):
    timed = steps[10:] or steps
    peak = max((s.get("peak_allocated_bytes", 0) for s in steps), default=0)
    loss = {s["step"]: s["loss"] for s in steps}
    last = steps[-1]["step"]
    return name, statistics.median(s["tokens_per_s"] for s in timed), statistics.median(s["step_time_ms"] for s in timed), \
        peak / 2**30, loss.get(1), loss.get(10), loss[last], last


def main():
    a, r = load(sys.argv[1]), load(sys.argv[2])
    rows = [row("aios", a), row("PyTorch eager (bench/reference_trainer.py)", r)]
    last = rows[0][7]
    print(f"| trainer | tokens/s | step time (ms) | peak allocated (GiB) | loss @1 | loss @10 | loss @{last} |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, tps, ms, peak, l1, l10, ll, _ in rows:
        print(f"| {name} | {tps:,.0f} | {ms:.1f} | {peak:.2f} | {l1:.4f} | {l10:.4f} | {ll:.4f} |")
    gap = abs(rows[0][6] - rows[1][6]) / rows[1][6]
    print(f"\naios / reference tokens/s: {rows[0][1] / rows[1][1]:.3f}; loss gap at step {last}: {100 * gap:.3f}%")


if __name__ == "__main__":
    main()
