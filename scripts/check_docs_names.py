#!/usr/bin/env python3
"""Checks that docs/architecture.md names only what exists: every path it mentions (src/...,
scripts/..., tests/..., docs/...) is a file, a bare file name listed after a path exists in that
path's folder, and every `Name`, `Name::member` or `name()` in backticks occurs in src/.
Usage: check_docs_names.py [DOC...]; exit 1 and one line per missing name otherwise."""
import os
import re
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
docs = sys.argv[1:] or [os.path.join(root, "docs", "architecture.md")]
source = []
for folder, _, files in os.walk(os.path.join(root, "src")):
    for name in files:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            source.append(f.read())
source = "\n".join(source)

missing = []
for doc in docs:
    text = open(doc, encoding="utf-8").read()
    # Paths, and file names that follow a path on the same line ("src/a/x.cpp, y.cpp").
    for line in text.splitlines():
        folder = None
        for token in re.findall(r"[\w./-]+\.(?:cpp|h|cu|md|py|sh)\b", line):
            if "/" in token:
                folder = os.path.dirname(token)
                path = token
            elif folder is not None:
                path = os.path.join(folder, token)
            else:
                continue
            if not os.path.exists(os.path.join(root, path)):
                missing.append(f"{doc}: no file {path}")
    # Identifiers in backticks and in the diagram: CamelCase names, Name::member, snake_case calls.
    names = set(re.findall(r"`([A-Za-z_][\w:]*)(?:\(\))?`", text))
    diagram = "\n".join(re.findall(r"```\n(.*?)```", text, re.S))
    names |= set(re.findall(r"\b([A-Z][a-z]\w*(?:::\w+)?)\b", diagram))
    names |= set(re.findall(r"\b([a-z]+_[a-z_]+)(?=[:(])", diagram))
    for name in sorted(names):
        last = name.split("::")[-1]
        if name in {"aios", "main"} or "-" in name:
            continue
        if not re.search(r"\b%s\b" % re.escape(last), source):
            missing.append(f"{doc}: `{name}` is not in src/")

for line in missing:
    print(line)
print(f"check_docs_names: {len(missing)} missing" if missing else "check_docs_names: every name exists")
sys.exit(1 if missing else 0)
