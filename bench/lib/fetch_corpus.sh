#!/usr/bin/env bash
# Fetch the benchmark corpus (bench/lib/corpus.py) from package registries into ~/.cache/diffusion-copilot-bench/corpus.
set -euo pipefail
dest="${DIFFUSION_COPILOT_CORPUS:-$HOME/.cache/diffusion-copilot-bench/corpus}"
mkdir -p "$dest"/{npm,deb,x,sdist}
# react-day-picker 8.10.1 (MIT) publishes its src/*.tsx: the TSX project
cd "$dest/npm" && for p in lodash@4.18.1 rxjs@7.8.2 bats@1.13.0 react-day-picker@8.10.1; do
  f=$(npm pack --silent "$p"); mkdir -p "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
cd "$dest/deb" && apt-get download golang-github-spf13-cobra-dev golang-github-pkg-errors-dev librust-itertools-dev \
  librust-regex-syntax-dev ruby-rack ruby-thor && for f in *.deb; do dpkg -x "$f" "$dest/x"; done
cd "$dest/sdist" && pip download --no-binary :all: --no-deps -d . tree-sitter==0.26.1 lz4==4.4.5 greenlet==3.5.6 \
  JPype1==1.7.1 && for f in *.tar.gz; do tar xzf "$f"; done
