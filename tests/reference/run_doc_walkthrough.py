#!/usr/bin/env python3
"""Runs the shell blocks of a docs/ walkthrough in order, as a user would paste them, with the
variables of its first block set for a test.

Usage:
  run_doc_walkthrough.py DOC.md AIOS_BINARY WORK_DIR GPT2_DIR
      docs/fine-tuning.md: a tiny Hugging Face GPT-2 and a small text
  run_doc_walkthrough.py DOC.md AIOS_BINARY WORK_DIR --section TITLE --cwd DIR [--set K=V]... [--expect PATH]...
      the ```sh blocks of one "## TITLE" section, run in DIR with the variables K=V; each PATH
      (under WORK_DIR) must exist afterwards
"""
import argparse
import os
import re
import subprocess
import sys

from scratch import fresh_scratch_dir


def section_of(text: str, title: str) -> str:
    start = text.find("## " + title + "\n")
    if start < 0:
        sys.exit(f"no section '## {title}'")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("doc")
    parser.add_argument("aios")
    parser.add_argument("work")
    parser.add_argument("gpt2", nargs="?")
    parser.add_argument("--section")
    parser.add_argument("--cwd")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--expect", action="append", default=[])
    args = parser.parse_args()
    work = fresh_scratch_dir(args.work)
    text = open(args.doc, encoding="utf-8").read()
    env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(args.aios)) + os.pathsep + os.environ.get("PATH", ""))
    if args.gpt2:  # docs/fine-tuning.md
        os.makedirs(os.path.join(work, "texts"))
        for i in range(3):
            with open(os.path.join(work, "texts", f"part-{i}.txt"), "w", encoding="utf-8") as f:
                f.write(("The meaning of a window of text is in its tokens. It's 2026, and the model learns.\n"
                         "Über café: 日本語 and numbers 1 2 3.\n") * (40 + 10 * i))
        env.update(GPT2=args.gpt2, TEXT=os.path.join(work, "texts"), WORK=os.path.join(work, "fine-tune"),
                   WINDOW="32", STEPS="12")
        expected = ["fine-tune/shards/manifest.json", "fine-tune/run/latest", "fine-tune/hf/model.safetensors",
                    "fine-tune/hf/tokenizer.json"]
    else:
        expected = args.expect
    for assignment in args.set:
        key, _, value = assignment.partition("=")
        env[key] = value.replace("{work}", work)
    blocks = re.findall(r"```sh\n(.*?)```", section_of(text, args.section) if args.section else text, re.S)
    if not blocks:
        sys.exit(f"{args.doc}: no ```sh blocks")
    script = "set -euo pipefail\n" + "\n".join(blocks)
    done = subprocess.run(["bash", "-c", script], cwd=args.cwd or work, env=env)
    if done.returncode != 0:
        print(f"{args.doc}: the walkthrough's commands failed ({done.returncode})")
        return 1
    for name in expected:
        if not os.path.exists(os.path.join(work, name)):
            print(f"{args.doc}: the walkthrough did not make {name}")
            return 1
    print(f"{args.doc}: {len(blocks)} blocks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
