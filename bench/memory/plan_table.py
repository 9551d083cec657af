"""The table of aios plan's accuracy: planned against measured peak memory per configuration.
Usage: plan_table.py OUT_DIR CONFIGS_FILE (files written by bench/memory/plan_accuracy.sh)."""
import json
import os
import sys

out, configs = sys.argv[1], sys.argv[2]
GiB = 2**30
print("| configuration | peak allocated GiB: measured | planned | planned / measured | "
      "peak reserved GiB: measured | planned | planned / measured | moment of the planned peak |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
within, reserved_within, total = 0, 0, 0
for line in open(configs):
    if not line.strip() or line.startswith("#"):
        continue
    name = line.split()[0]
    measured_path = os.path.join(out, f"measured-{name}.jsonl")
    if not os.path.exists(measured_path):
        continue
    steps = [r for r in map(json.loads, open(measured_path)) if r.get("type") == "step"]
    if not steps:
        print(f"| {name} | did not train | | | |")
        continue
    allocated = max(r["peak_allocated_bytes"] for r in steps)
    reserved = max(r["peak_reserved_bytes"] for r in steps)
    shrunk = any(r["micro_batch"] != steps[0]["micro_batch"] for r in steps)
    cells = ["—"] * 5
    plan_path = os.path.join(out, f"plan-{name}.json")
    if os.path.exists(plan_path) and os.path.getsize(plan_path) > 0:
        plan = json.load(open(plan_path))
        ratio = plan["peak_bytes"] / allocated
        total += 1
        within += abs(ratio - 1) <= 0.10
        reserved_within += abs(plan["reserved_bytes"] / reserved - 1) <= 0.10
        cells = [f"{plan['peak_bytes'] / GiB:.2f}", f"{ratio:.3f}", f"{plan['reserved_bytes'] / GiB:.2f}",
                 f"{plan['reserved_bytes'] / reserved:.3f}", plan["peak_moment"]]
    print(f"| {name}{' (shrunk)' if shrunk else ''} | {allocated / GiB:.2f} | {cells[0]} | {cells[1]} | "
          f"{reserved / GiB:.2f} | {cells[2]} | {cells[3]} | {cells[4]} |")
    # Per-step figures for calibration: persistent memory after each step and each step's peaks.
    sys.stderr.write(name + " " + " ".join(
        f"[alloc {r['peak_allocated_bytes'] / GiB:.3f} res {r['peak_reserved_bytes'] / GiB:.3f} "
        f"cur {r['current_allocated_bytes'] / GiB:.3f}]" for r in steps) + "\n")
if total:
    print(f"\n{within} of {total} configurations planned within 10 % of the measured peak allocated memory, "
          f"{reserved_within} of {total} within 10 % of the measured peak reserved memory.")
