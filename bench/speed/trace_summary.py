#!/usr/bin/env python3
"""Where the GPU time of a training step goes, from Chrome traces of PyTorch's profiler (aios
--profile-file, or bench/reference_trainer.py --profile-file): per step, the GPU's busy and idle
time; the time by kind of work (matrix products, attention, normalization, ...) side by side for
any number of traces; and the kernels by name, with two traces side by side with the difference.

Usage: bench/speed/trace_summary.py STEPS TRACE [TRACE...] [--labels A,B,...] [--top N]
STEPS: steps in each trace (the runs' --profile-steps)."""
import argparse
import collections
import json
import re

GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")


# Kinds of work, first match wins, on the kernel's full name. torch.compile's Triton kernels carry the
# names of the ops they fuse (triton_per_fused_native_layer_norm_..., triton_red_fused__log_softmax_...),
# so they fall into the same kinds as ATen's and aios's kernels; what matches none is "other".
KINDS = (
    ("matrix products (cuBLAS, CUTLASS)", r"gemm|nvjet|cutlass|xmma|cublas|splitKreduce|Kernel2"),
    ("attention", r"flash|fmha|cudnn|attention|sdpa"),
    ("LayerNorm (and fused adds)", r"layer_norm|LayerNorm|GammaBeta|native_layer_norm"),
    ("classifier: softmax, cross-entropy", r"softmax|cross_entropy|nll_loss|log_softmax"),
    ("GELU", r"[Gg]elu|tanh"),
    ("optimizer", r"multi_tensor_apply|adam|Adam"),
    ("bias-gradient and other reductions", r"reduce_kernel|triton_red_|triton_per_|sum_partials|column_sums"),
    ("embedding", r"embedding|indexSelect|index_put|indexing_backward|EmbeddingBackward|radix|sort"),
    ("copies, casts, concatenation, fills", r"copy|Memcpy|Memset|CatArray|fill|cast"),
    ("other elementwise (adds, scales)", r"elementwise|triton_poi_"),
)


def kind_of(name):
    for kind, pattern in KINDS:
        if re.search(pattern, name):
            return kind
    return "other"


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
    by_kind = collections.defaultdict(lambda: [0.0, 0])
    for e in events:
        kind = by_kind[kind_of(e["name"])]
        kind[0] += e["dur"] / steps / 1e3
        kind[1] += 1
        entry = by_name[short(e["name"])]
        entry[0] += e["dur"] / steps / 1e3
        entry[1] += 1
    return {"span_ms": span / steps / 1e3, "busy_ms": busy_time(events) / steps / 1e3,
            "kernels": len(events) / steps, "by_name": by_name,
            "by_kind": by_kind}


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
    print("| kind of work, ms/step (kernels) | " + " | ".join(labels) + " |")
    print("| --- |" + " --- |" * len(runs))
    for kind in [k for k, _ in KINDS] + ["other"]:
        cells = [f"{r['by_kind'][kind][0]:.2f} ({r['by_kind'][kind][1] // args.steps})" if kind in r["by_kind"]
                 else "0" for r in runs]
        print(f"| {kind} | " + " | ".join(cells) + " |")
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
        order = sorted(names, key=lambda n: -max(value(r, n) for r in runs))
        print("| kernel | " + " | ".join(f"{l} ms/step (calls)" for l in labels) + " |")
        print("| --- |" + " --- |" * len(runs))
    for n in order[:args.top]:
        cells = [f"{value(r, n):.2f} ({r['by_name'][n][1] // args.steps if n in r['by_name'] else 0})" for r in runs]
        diff = f" | {value(runs[0], n) - value(runs[1], n):+.2f}" if len(runs) == 2 else ""
        print(f"| `{n.replace('|', '/')}` | " + " | ".join(cells) + diff + " |")


if __name__ == "__main__":
    main()
