#!/usr/bin/env python3
"""Tables of bench/distributed/multi_gpu.sh's runs (OUT/dist-NAME.jsonl): loss curves of 1 and 2
GPUs on the same global batch, tokens/s and scaling efficiency (2-GPU tokens/s over twice the
1-GPU figure, same micro-batch per GPU; medians of steps 6..N), peak memory and optimizer state
per rank, the out-of-memory drills' events, and chunked long-context training on 1 and 2 GPUs.
Usage: distributed_table.py OUT"""
import json
import os
import statistics
import sys

GIB = 2**30


def load(out, name):
    path = f"{out}/dist-{name}.jsonl"
    if not os.path.exists(path):
        return None
    records = [json.loads(line) for line in open(path)]
    return {"config": next((r for r in records if r.get("type") == "config"), {}),
            "steps": [r for r in records if r.get("type") == "step"],
            "events": [r for r in records if r.get("type") == "event"]}


def tokens_per_s(run):
    steps = run["steps"]
    return statistics.median(s["tokens_per_s"] for s in (steps[5:] or steps))


def peaks(run):
    per_rank = [s.get("peak_allocated_bytes_per_rank", [s.get("peak_allocated_bytes", 0)]) for s in run["steps"]]
    return [max(p[r] for p in per_rank) / GIB for r in range(len(per_rank[0]))]


def state(run):
    d = run["config"].get("distributed", {})
    return [b / GIB for b in d.get("optimizer_state_bytes_per_rank", [])]


def largest_relative_difference(one, two):
    """Over the steps both runs logged, in order: |loss 1 - loss 2| / |loss 1| at its largest."""
    return max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(one["steps"], two["steps"]))


def compare(out, prefix, names):
    """Loss curves and speed of NAME-1gpu (accumulation 2) against NAME-2gpu for each name."""
    print("| run | steps | loss last (1 / 2 GPUs) | largest relative loss difference | tokens/s 1 GPU | "
          "tokens/s 2 GPUs | scaling efficiency | peak GiB 1 GPU | peak GiB per rank, 2 GPUs |")
    print("| --- |" + " --- |" * 8)
    for name in names:
        one, two = load(out, f"{prefix}-{name}-1gpu"), load(out, f"{prefix}-{name}-2gpu")
        if not one or not two or not one["steps"] or not two["steps"]:
            print(f"| {name} | missing |" + " |" * 7)
            continue
        pairs = list(zip(one["steps"], two["steps"]))
        worst = largest_relative_difference(one, two)
        t1, t2 = tokens_per_s(one), tokens_per_s(two)
        print(f"| {name} | {len(pairs)} | {pairs[-1][0]['loss']:.4f} / {pairs[-1][1]['loss']:.4f} | {worst:.2e} | "
              f"{t1:,.0f} | {t2:,.0f} | {100 * t2 / (2 * t1):.1f} % | {peaks(one)[0]:.2f} | "
              f"{' / '.join(f'{p:.2f}' for p in peaks(two))} |")
    print()


def resume(out):
    """Losses of the runs resumed from the straight run's step-3 checkpoint, step by step."""
    straight = load(out, "resume-straight")
    if not straight or not straight["steps"]:
        return
    by_step = {s["step"]: s["loss"] for s in straight["steps"]}
    print("| run | steps compared | losses (steps 4..6) | largest relative difference from the straight run |")
    print("| --- | --- | --- | --- |")
    for name in ("resume-straight", "resume-repeat", "resume-resumed", "resume-onto-1gpu"):
        run = load(out, name)
        rows = [s for s in (run or {"steps": []})["steps"] if s["step"] > 3 and s["step"] in by_step]
        if not rows:
            print(f"| {name} | missing | | |")
            continue
        worst = max(abs(s["loss"] - by_step[s["step"]]) / abs(by_step[s["step"]]) for s in rows)
        losses = " ".join(f"{s['loss']:.6f}" for s in rows)
        print(f"| {name} | {len(rows)} | {losses} | {worst:.2e} |")
    print()


def curves(out):
    print("| curve | steps | loss step 1 (1 / 2 GPUs) | loss last (1 / 2 GPUs) | largest relative loss difference |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("fp32", "all"):
        one, two = load(out, f"curve-{name}-1gpu"), load(out, f"curve-{name}-2gpu")
        if not one or not two or not one["steps"] or not two["steps"]:
            print(f"| {name} | missing | | | |")
            continue
        pairs = list(zip(one["steps"], two["steps"]))
        worst = largest_relative_difference(one, two)
        print(f"| {name} | {len(pairs)} | {pairs[0][0]['loss']:.4f} / {pairs[0][1]['loss']:.4f} | "
              f"{pairs[-1][0]['loss']:.4f} / {pairs[-1][1]['loss']:.4f} | {worst:.2e} |")
    print()


def scaling(out):
    print("| run | tokens/s 1 GPU | tokens/s 2 GPUs | scaling efficiency | peak GiB 1 GPU | peak GiB per rank, 2 GPUs "
          "| optimizer state GiB 1 GPU | per rank, 2 GPUs | state ratio |")
    print("| --- |" + " --- |" * 8)
    names = ["gpt2", "gpt2-large", "gpt2-large-accum4", "gpt2-large-fp32adam"]
    for name in names:
        one, two = load(out, f"scale-{name}-1gpu"), load(out, f"scale-{name}-2gpu")
        if not one or not two or not one["steps"] or not two["steps"]:
            print(f"| {name} | missing |" + " |" * 7)
            continue
        t1, t2 = tokens_per_s(one), tokens_per_s(two)
        s1, s2 = state(one), state(two)
        ratio = f"{max(s2) / s1[0]:.3f}" if s1 and s2 else ""
        print(f"| {name} | {t1:,.0f} | {t2:,.0f} | {100 * t2 / (2 * t1):.1f} % | {peaks(one)[0]:.2f} | "
              f"{' / '.join(f'{p:.2f}' for p in peaks(two))} | {s1[0] if s1 else 0:.3f} | "
              f"{' / '.join(f'{s:.3f}' for s in s2)} | {ratio} |")
    one = load(out, "scale-gpt2-large-1gpu")
    for name, label in (("allreduce", "plain all-reduce (no ZeRO)"), ("bucket100", "ZeRO-1, 100 MiB buckets"),
                        ("bucket400", "ZeRO-1, 400 MiB buckets")):
        other = load(out, f"scale-gpt2-large-{name}-2gpu")
        if not (other and other["steps"] and one and one["steps"]):
            continue
        t1, t2 = tokens_per_s(one), tokens_per_s(other)
        print(f"| gpt2-large, {label} | {t1:,.0f} | {t2:,.0f} | {100 * t2 / (2 * t1):.1f} % | "
              f"{peaks(one)[0]:.2f} | {' / '.join(f'{p:.2f}' for p in peaks(other))} | {state(one)[0]:.3f} | "
              f"{' / '.join(f'{s:.3f}' for s in state(other))} | |")
    print()


def oom(out):
    print("| drill | shrink events | micro-batch after | steps done | last loss | last loss without the fault |")
    print("| --- | --- | --- | --- | --- | --- |")
    reference = {"oom-injected-backward": "oom-none", "oom-injected-forward": "oom-none", "oom-real": "oom-real-reference"}
    for name, ref in reference.items():
        run, base = load(out, name), load(out, ref)
        if not run:
            print(f"| {name} | missing | | | | |")
            continue
        events = [e for e in run["events"] if e.get("event") == "batch_shrink"]
        described = "; ".join(f"step {e['step']} ranks {e['ranks']} {e['micro_batch_before']}->{e['micro_batch']}"
                              for e in events) or "none"
        last = run["steps"][-1] if run["steps"] else {}
        base_loss = f"{base['steps'][-1]['loss']:.4f}" if base and base["steps"] else ""
        print(f"| {name} | {described} | {last.get('micro_batch', '')} x {last.get('accumulation', '')} | "
              f"{len(run['steps'])} | {last.get('loss', float('nan')):.4f} | {base_loss} |")
    print()


def main():
    out = sys.argv[1]
    one = load(out, "scale-gpt2-1gpu") or load(out, "curve-all-1gpu")
    if one:
        print(f"Device: {one['config'].get('device', '?')}\n")
    curves(out)
    scaling(out)
    oom(out)
    resume(out)
    if load(out, "lc-exact-1gpu"):
        print("Long-context chunks (64k-token windows, 8,192-token chunks; 1 GPU at accumulation 2):\n")
        compare(out, "lc", ["exact", "truncated"])


if __name__ == "__main__":
    main()
