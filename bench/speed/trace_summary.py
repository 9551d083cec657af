#!/usr/bin/env python3
"""Where the GPU time of a training step goes, from Chrome traces of PyTorch's profiler (aios
--profile-file, or bench/reference_trainer.py --profile-file): per step, the GPU's busy and idle
time and the kernels by name; given two traces, the kernels side by side with the difference.

Usage: bench/speed/trace_summary.py STEPS TRACE [TRACE2] [--labels A,B] [--top N]
STEPS: steps in each trace (the runs' --profile-steps)."""
import argparse
import collections
import json

GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")


def load(path):
    events = json.load(open(path))["traceEvents"]
    return [e for e in events if e.get("ph") == "X" and e.get("cat") in GPU_CATEGORIES]


def busy_time(events):
    """Union of the GPU intervals (streams overlap), in microseconds."""
    total, end = 0.0, None
    for start, stop in sorted((e["ts"], e["ts"] + e["dur"]) for e in events):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def short(name, width=110):
    return name if len(name) <= width else name[:width - 3] + "..."


def summarize(path, steps):
    events = load(path)
    span = max(e["ts"] + e["dur"] for e in events) - min(e["ts"] for e in events)
    by_name = collections.defaultdict(lambda: [0.0, 0])
    for e in events:
        entry = by_name[short(e["name"])]
        entry[0] += e["dur"] / steps / 1e3
        entry[1] += 1
    return {"span_ms": span / steps / 1e3, "busy_ms": busy_time(events) / steps / 1e3,
            "kernels": len(events) / steps, "by_name": by_name}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", type=int)
    parser.add_argument("traces", nargs="+")
    parser.add_argument("--labels", default="")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    labels = args.labels.split(",") if args.labels else args.traces
    runs = [summarize(path, args.steps) for path in args.traces]
    print("| per step | " + " | ".join(labels) + " |")
    print("| --- |" + " --- |" * len(runs))
    for key, title in (("span_ms", "GPU span, first kernel to last (ms)"), ("busy_ms", "GPU busy (ms)"),
                       ("kernels", "kernels and copies")):
        print(f"| {title} | " + " | ".join(f"{r[key]:.1f}" for r in runs) + " |")
    print("| GPU idle inside the span (ms) | " + " | ".join(f"{r['span_ms'] - r['busy_ms']:.1f}" for r in runs) + " |")
    print()
    names = set().union(*(r["by_name"] for r in runs))
    def value(r, n):
        return r["by_name"][n][0] if n in r["by_name"] else 0.0
    # Largest first; with two traces, largest difference first.
    if len(runs) == 2:
        order = sorted(names, key=lambda n: -abs(value(runs[0], n) - value(runs[1], n)))
        print("| kernel | " + " | ".join(f"{l} ms/step (calls)" for l in labels) + " | difference ms |")
        print("| --- |" + " --- |" * 3)
    else:
        order = sorted(names, key=lambda n: -value(runs[0], n))
        print(f"| kernel | {labels[0]} ms/step (calls) |")
        print("| --- | --- |")
    for n in order[:args.top]:
        cells = [f"{value(r, n):.2f} ({r['by_name'][n][1] // args.steps if n in r['by_name'] else 0})" for r in runs]
        diff = f" | {value(runs[0], n) - value(runs[1], n):+.2f}" if len(runs) == 2 else ""
        print(f"| `{n.replace('|', '/')}` | " + " | ".join(cells) + diff + " |")


if __name__ == "__main__":
    main()
