#!/usr/bin/env bash
# Fetches tiktoken's rank files (r50k_base/GPT-2, p50k_base, cl100k_base, o200k_base) for the
# tokenizer tests, from packages on PyPI that ship them (openai-whisper ships GPT-2's, litellm the
# others), into $AIOS_REFERENCE_TOKENIZERS (default ~/.cache/aios/reference-tokenizers). Each file
# is checked against the SHA-256 that tiktoken itself expects. Does nothing when all are present.
set -euo pipefail
dest=${AIOS_REFERENCE_TOKENIZERS:-$HOME/.cache/aios/reference-tokenizers}
declare -A sha256=(
  [gpt2.tiktoken]=306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930
  [p50k_base.tiktoken]=94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069
  [cl100k_base.tiktoken]=223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7
  [o200k_base.tiktoken]=446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d
)
# Where each file is inside its package (tiktoken's cache names files by the SHA-1 of their URL).
declare -A member=(
  [gpt2.tiktoken]=whisper/assets/gpt2.tiktoken
  [p50k_base.tiktoken]=litellm/litellm_core_utils/tokenizers/ec7223a39ce59f226a68acc30dc1af2788490e15
  [cl100k_base.tiktoken]=litellm/litellm_core_utils/tokenizers/9b5ad71b2ce5302211f9c61530b329a4922fc6a4
  [o200k_base.tiktoken]=litellm/litellm_core_utils/tokenizers/fb374d419588a4632f3f557e76b4b70aebbca790
)
intact() { [ -f "$dest/$1" ] && [ "$(sha256sum "$dest/$1" | cut -d' ' -f1)" = "${sha256[$1]}" ]; }
missing=0
for name in "${!sha256[@]}"; do intact "$name" || missing=1; done
[ $missing = 0 ] && exit 0

mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch_reference_tokenizers: downloading openai-whisper and litellm (for their rank files) into $work"
python3 -m pip download -q --no-deps --no-binary openai-whisper -d "$work" openai-whisper==20250625
python3 -m pip download -q --no-deps --only-binary :all: -d "$work" litellm==1.110.2
tar -xzf "$work"/openai_whisper-*.tar.gz -C "$work"
python3 - "$work" <<'PY'
import glob, sys, zipfile
work = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{work}/litellm-*.whl")[0]) as wheel:
    for name in wheel.namelist():
        if name.startswith("litellm/litellm_core_utils/tokenizers/"):
            wheel.extract(name, work)
PY
cp "$work"/openai_whisper-*/whisper/assets/gpt2.tiktoken "$work/whisper-gpt2.tiktoken"
for name in "${!member[@]}"; do
  source_path="$work/${member[$name]}"
  [ "$name" = gpt2.tiktoken ] && source_path="$work/whisper-gpt2.tiktoken"
  if [ "$(sha256sum "$source_path" | cut -d' ' -f1)" != "${sha256[$name]}" ]; then
    echo "fetch_reference_tokenizers: $name from its package does not have tiktoken's SHA-256" >&2
    exit 1
  fi
  cp "$source_path" "$dest/$name"
done
echo "fetch_reference_tokenizers: rank files in $dest"
