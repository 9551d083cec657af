#!/usr/bin/env python3
"""`aios report` in a real browser: two short CPU runs (one resumed, one shrunk by an injected
out-of-memory error), their report opened in headless Chromium, which must render it without a
console error. The DOM as Chromium built it must hold every chart with one polyline per series and
as many points as the runs have steps; a screenshot is kept beside the report (WORK/report.png).

Usage: check_report_in_browser.py AIOS_BINARY WORK_DIR
"""
import os
import re
import shutil
import subprocess
import sys

from scratch import fresh_scratch_dir


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    sys.exit("no Chromium on PATH (scripts/install_deps.sh installs Debian's chromium)")


def run(*args: str, env: dict | None = None) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stdout}{done.stderr}")


def main() -> int:
    aios, work = sys.argv[1], os.path.abspath(sys.argv[2])
    work = fresh_scratch_dir(work)
    os.makedirs(os.path.join(work, "corpus"))
    with open(os.path.join(work, "corpus", "a.txt"), "w") as f:
        f.write("the model learns a window of text and the gradient flows back.\n" * 1500)
    run(aios, "prepare", os.path.join(work, "corpus"), "--output", os.path.join(work, "set"))
    common = [aios, "train", "--dataset-file", os.path.join(work, "set"), "--model", "tiny", "--n-layer", "1",
              "--n-head", "2", "--n-embd", "32", "--window-size", "16", "--batch-size", "4", "--warmup-steps", "1",
              "--eval-interval", "4", "--eval-batches", "1", "--device", "cpu", "--no-amp"]
    run(*common, "--steps", "5", "--out-dir", os.path.join(work, "a"), "--log-file",
        os.path.join(work, "a", "metrics.jsonl"))
    run(*common, "--steps", "8", "--resume", "latest", "--out-dir", os.path.join(work, "a"), "--log-file",
        os.path.join(work, "a", "metrics.jsonl"))
    run(*common, "--steps", "6", "--fault-injection", "--out-dir", os.path.join(work, "b"), "--log-file",
        os.path.join(work, "b", "metrics.jsonl"), env=dict(os.environ, AIOS_FAULT_OOM_AT_STEP="3"))
    report = os.path.join(work, "report.html")
    run(aios, "report", os.path.join(work, "a"), os.path.join(work, "b"), "-o", report)

    browser = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--enable-logging=stderr", "--v=0", "--window-size=1300,2200"]
    dom = subprocess.run(browser + ["--dump-dom", "file://" + report], capture_output=True, text=True, timeout=120)
    shot = subprocess.run(browser + ["--screenshot=" + os.path.join(work, "report.png"), "file://" + report],
                          capture_output=True, text=True, timeout=120)
    ok = True
    console = [line for line in (dom.stderr + shot.stderr).splitlines() if "CONSOLE" in line]
    if console:
        print("console messages:\n  " + "\n  ".join(console))
        ok = False
    charts = re.findall(r'<svg id="([^"]+)".*?</svg>', dom.stdout, re.S)
    if len(charts) != 7:
        print(f"the DOM holds {len(charts)} charts, not 7")
        ok = False
    loss = re.search(r'<svg id="loss".*?</svg>', dom.stdout, re.S)
    want = {"a": 8, "b": 6, "a val": 3, "b val": 2}  # a: evaluated at 4, 5 (its first part's end), 8
    for series, points in want.items():
        found = loss and re.search(rf'data-series="{re.escape(series)}" data-points="(\d+)" points="([^"]*)"',
                                   loss.group(0))
        drawn = len(found.group(2).split()) if found else 0
        if not found or int(found.group(1)) != points or drawn != points:
            print(f"loss chart, series {series!r}: {drawn} points drawn, {points} expected")
            ok = False
    if "resumed from step 5" not in dom.stdout or "micro-batch 4 -&gt; 2" not in dom.stdout:
        print("the resume or the out-of-memory shrink is not marked")
        ok = False
    size = os.path.getsize(os.path.join(work, "report.png")) if os.path.exists(os.path.join(work, "report.png")) else 0
    if size < 10_000:
        print(f"no screenshot ({size} bytes)")
        ok = False
    print(f"report in Chromium: {len(charts)} charts, screenshot {os.path.join(work, 'report.png')} ({size} bytes): "
          + ("as expected" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
