#!/usr/bin/env bash
# `make fresh-check`: clone the current commit into a temp dir and run `make test` there from nothing
# (new venv from the lock, empty uv/pip/HF/project caches), printing set-up time, test time and venv size.
# It checks the committed tree: uncommitted changes are not part of it (a warning says so).
set -euo pipefail
root="$(git rev-parse --show-toplevel)"
commit="$(git -C "$root" rev-parse HEAD)"
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
  echo "fresh-check: warning: uncommitted changes are not checked (cloning $commit)" >&2
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/upcycle-st-fresh.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --no-local "$root" "$tmp/repo"
git -C "$tmp/repo" checkout --quiet "$commit"
# No cache of any kind survives from this machine: every wheel is downloaded and verified against the lock.
unset UPCYCLE_ST_CACHE VIRTUAL_ENV
export UV_CACHE_DIR="$tmp/uv-cache" PIP_NO_CACHE_DIR=1 HF_HOME="$tmp/hf" XDG_CACHE_HOME="$tmp/xdg"
cd "$tmp/repo"
t0=$(date +%s)
make setup
t1=$(date +%s)
make test
t2=$(date +%s)
size="$(du -sh .venv | cut -f1)"
echo "fresh-check ($commit, $(python3 --version 2>&1)):"
echo "  set-up (venv from the lock, nothing cached): $((t1 - t0)) s"
echo "  make test:                                  $((t2 - t1)) s"
echo "  venv size:                                  $size"
