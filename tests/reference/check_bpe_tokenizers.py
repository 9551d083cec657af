#!/usr/bin/env python3
"""aios's byte-level BPE against the reference implementations, id for id, on several MB of
varied text (emoji, CJK, accents, combining marks, runs of spaces and newlines, digits,
contractions, code, invalid-free UTF-8):

  * Hugging Face `tokenizers`: two byte-level BPEs trained here on the text, one with GPT-2's
    ByteLevel pre-tokenizer (read as tokenizer.json and as vocab.json + merges.txt), one with a
    Split regex (cl100k's) and ignore_merges, as Llama 3's tokenizer.json has;
  * tiktoken's encode_ordinary with the rank files of r50k_base (GPT-2), p50k_base, cl100k_base
    and o200k_base, from the directory scripts/fetch_reference_tokenizers.sh fills.

Each must give the same ids through `aios tokenize` (on two threads, so the text is also cut at
split points) and decode back to the same bytes.

Usage: check_bpe_tokenizers.py AIOS_BINARY WORK_DIR [RANK_FILE_DIR]
"""
import os
import random
import subprocess
import sys

import tiktoken
import tiktoken_ext.openai_public as openai_public
from tiktoken.load import load_tiktoken_bpe
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

def encoding_spec(name: str) -> dict:
    """tiktoken's own pattern and special tokens for an encoding, without its download."""
    load = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *args, **kwargs: {}
    try:
        return getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = load


RANK_FILES = {
    "gpt2.tiktoken": ("gpt2", openai_public.r50k_pat_str, {"<|endoftext|>": 50256}),
    "p50k_base.tiktoken": ("p50k_base", openai_public.r50k_pat_str, {"<|endoftext|>": 50256}),
    "cl100k_base.tiktoken": ("cl100k_base", None, None),
    "o200k_base.tiktoken": ("o200k_base", None, None),
}


def varied_text(size: int, seed: int) -> str:
    """Deterministic text mixing the scripts and spacing that pre-tokenizers treat differently.
    Code points come from blocks assigned long before Unicode 14, which every engine here knows."""
    rng = random.Random(seed)
    words = ("the of and to in is was for on that with as by at from it he she they we you this are "
             "be had not but what all were when there can an your which their said if do will each "
             "about how up out them then many some so these would other into has more her two like "
             "him see time could no make than first been its who now people my made over did down "
             "only way find use may water long little very after words called just where most know "
             "Hello World THE OF GPT Über naïve café résumé façade jalapeño Ångström crème brûlée "
             "straße coöperate São Paulo Zürich").split()
    contractions = ["it's", "don't", "I'm", "we've", "they're", "she'll", "he'd", "IT'S", "DON'T",
                    "We'Re", "o'clock", "rock'n'roll", "'s", "'ll", "''", "'"]
    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 2000)]
    kana = [chr(c) for c in range(0x3041, 0x3097)] + [chr(c) for c in range(0x30A1, 0x30FB)]
    hangul = [chr(c) for c in range(0xAC00, 0xAC00 + 500)]
    cyrillic = [chr(c) for c in range(0x0410, 0x0450)]
    greek = [chr(c) for c in range(0x0391, 0x03CA) if c != 0x03A2]
    arabic = [chr(c) for c in range(0x0621, 0x064B)]
    devanagari = [chr(c) for c in range(0x0915, 0x0939)] + ["\u093e", "\u093f", "\u0940", "\u094d"]
    emoji = [chr(c) for c in range(0x1F600, 0x1F650)] + ["\U0001F468\u200D\U0001F469\u200D\U0001F467",
                                                         "\U0001F44D\U0001F3FD", "\u2764\uFE0F", "\U0001F1EF\U0001F1F5"]
    combining = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "\u0301"]
    spaces = [" ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", " \n", "  \n  ", "\r\n", "\u00A0", "\u3000",
              "\u2028", "\u0085", "\u2009", " \t ", "\n    ", "\u180E"]
    symbols = list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "--", "->", "==", "!=", "/*", "*/", "//",
                                                          "\u2014", "\u00AB", "\u00BB", "\u201C", "\u201D", "\u20AC"]
    code = ["def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
            "<div class=\"x\">&nbsp;</div>", "SELECT * FROM t WHERE id = 42;", "https://example.com/a/b?c=1&d=2",
            "x_1 = y__2 + 3.14159e-10", "    \n\n    # comment\n", "{\"key\": [1, 2, 3]}"]

    def number() -> str:
        return "".join(rng.choice("0123456789") for _ in range(rng.choice([1, 2, 3, 4, 5, 7, 12])))

    def run(alphabet, low, high) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))

    makers = [
        (30, lambda: rng.choice(words)), (6, lambda: rng.choice(contractions)), (5, number),
        (3, lambda: run(cjk, 1, 40)), (2, lambda: run(kana, 1, 12)), (1, lambda: run(hangul, 1, 6)),
        (2, lambda: run(cyrillic, 2, 10)), (1, lambda: run(greek, 2, 9)), (1, lambda: run(arabic, 2, 8)),
        (1, lambda: run(devanagari, 2, 8)), (2, lambda: run(emoji, 1, 4)), (1, lambda: rng.choice(combining)),
        (14, lambda: rng.choice(spaces)), (8, lambda: rng.choice(symbols)), (1, lambda: rng.choice(code)),
        (1, lambda: "=" * rng.randint(3, 300)), (1, lambda: " " * rng.randint(2, 40)),
    ]
    total = sum(w for w, _ in makers)
    pieces, length = [], 0
    while length < size:
        pick = rng.uniform(0, total)
        for weight, make in makers:
            pick -= weight
            if pick <= 0:
                break
        piece = make()
        if rng.random() < 0.55 and not piece[-1:].isspace():
            piece += " "
        pieces.append(piece)
        length += len(piece.encode("utf-8"))
    return "".join(pieces)


def train_hf(text: str, split_pattern: str | None, vocab_size: int = 3000) -> Tokenizer:
    model = models.BPE(ignore_merges=split_pattern is not None)
    tokenizer = Tokenizer(model)
    if split_pattern is None:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split_pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    return tokenizer


def aios_ids(aios: str, tokenizer: str, text_path: str, out_path: str) -> list[int]:
    if os.path.exists(out_path):
        os.remove(out_path)  # aios tokenize writes only new files
    subprocess.run([aios, "tokenize", "--tokenizer", tokenizer, text_path, "--output", out_path, "--threads", "2"],
                   check=True)
    data = open(out_path, "rb").read()
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


def compare(name: str, expected: list[int], got: list[int], text: str, decode) -> bool:
    if expected == got:
        print(f"  {name}: {len(got)} ids equal")
        return True
    first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    print(f"  {name}: MISMATCH at id {first} of {len(expected)} expected / {len(got)} got")
    print(f"    expected {expected[max(0, first - 3):first + 5]} = {decode(expected[max(0, first - 3):first + 5])!r}")
    print(f"    got      {got[max(0, first - 3):first + 5]}")
    return False


def main() -> int:
    aios, work = sys.argv[1], sys.argv[2]
    rank_dir = sys.argv[3] if len(sys.argv) > 3 else os.environ.get(
        "AIOS_REFERENCE_TOKENIZERS", os.path.expanduser("~/.cache/aios/reference-tokenizers"))
    os.makedirs(work, exist_ok=True)
    text = varied_text(3_000_000, seed=7)
    text_path = os.path.join(work, "varied.txt")
    with open(text_path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    print(f"{len(text.encode('utf-8'))} bytes of varied text")
    ok = True
    ids_path = os.path.join(work, "ids.u32")

    for label, pattern in [("hf-byte-level", None), ("hf-split", encoding_spec("cl100k_base")["pat_str"])]:
        tokenizer = train_hf(text[:1_000_000], pattern)
        directory = os.path.join(work, label)
        os.makedirs(directory, exist_ok=True)
        tokenizer.save(os.path.join(directory, "tokenizer.json"))
        expected = tokenizer.encode(text, add_special_tokens=False).ids
        got = aios_ids(aios, os.path.join(directory, "tokenizer.json"), text_path, ids_path)
        ok &= compare(f"{label} tokenizer.json", expected, got, text, tokenizer.decode)
        if pattern is None:  # GPT-2's original pair of files
            tokenizer.model.save(directory)
            got = aios_ids(aios, os.path.join(directory, "vocab.json"), text_path, ids_path)
            ok &= compare(f"{label} vocab.json + merges.txt", expected, got, text, tokenizer.decode)

    for file_name, (name, pattern, specials) in RANK_FILES.items():
        path = os.path.join(rank_dir, file_name)
        if not os.path.exists(path):
            print(f"  {file_name}: missing from {rank_dir} (scripts/fetch_reference_tokenizers.sh fetches it)")
            ok = False
            continue
        if pattern is None:
            spec = encoding_spec(name)
            pattern, specials = spec["pat_str"], spec["special_tokens"]
        encoding = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=load_tiktoken_bpe(path),
                                     special_tokens=specials)
        expected = encoding.encode_ordinary(text)
        got = aios_ids(aios, path, text_path, ids_path)
        ok &= compare(f"tiktoken {name}", expected, got, text, encoding.decode)
        decoded = subprocess.run([aios, "tokenize", "--tokenizer", path, "--decode", ids_path],
                                 check=True, capture_output=True).stdout
        if decoded != text.encode("utf-8"):
            print(f"  tiktoken {name}: decode(encode(text)) differs from the text")
            ok = False
    print("all equal" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
