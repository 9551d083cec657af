#!/usr/bin/env python3
"""Runs the shell blocks of a docs/ walkthrough in order, as a user would paste them, with the
variables of its first block set for a test: a tiny Hugging Face GPT-2 and a small text.

Usage: run_doc_walkthrough.py DOC.md AIOS_BINARY WORK_DIR GPT2_DIR
"""
import os
import re
import shutil
import subprocess
import sys


def main() -> int:
    doc, aios, work, gpt2 = sys.argv[1:5]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "texts"))
    for i in range(3):
        with open(os.path.join(work, "texts", f"part-{i}.txt"), "w", encoding="utf-8") as f:
            f.write(("The meaning of a window of text is in its tokens. It's 2026, and the model learns.\n"
                     "Über café: 日本語 and numbers 1 2 3.\n") * (40 + 10 * i))
    blocks = re.findall(r"```sh\n(.*?)```", open(doc, encoding="utf-8").read(), re.S)
    if not blocks:
        sys.exit(f"{doc}: no ```sh blocks")
    env = dict(os.environ, GPT2=gpt2, TEXT=os.path.join(work, "texts"), WORK=os.path.join(work, "fine-tune"),
               WINDOW="32", STEPS="12",
               PATH=os.path.dirname(os.path.abspath(aios)) + os.pathsep + os.environ.get("PATH", ""))
    script = "set -euo pipefail\n" + "\n".join(blocks)
    done = subprocess.run(["bash", "-c", script], cwd=work, env=env)
    if done.returncode != 0:
        print(f"{doc}: the walkthrough's commands failed ({done.returncode})")
        return 1
    for name in ("fine-tune/shards/manifest.json", "fine-tune/run/latest", "fine-tune/hf/model.safetensors",
                 "fine-tune/hf/tokenizer.json"):
        if not os.path.exists(os.path.join(work, name)):
            print(f"{doc}: the walkthrough did not make {name}")
            return 1
    print(f"{doc}: {len(blocks)} blocks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
