#!/usr/bin/env bash
# `make fresh-check`: clone the current commit into a temp dir and run `make test`, then `make demo`, there from
# nothing (new venv from the lock, empty uv/pip/HF/project caches), printing the set-up, test and demo times and
# the venv size, to compare with README's timing table. FRESH_DEMO=0 skips the demo (~15 min on 2 cores).
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
if [ "${FRESH_DEMO:-1}" != 0 ]; then make demo DEMO_DIR="$tmp/demo"; fi
t3=$(date +%s)
size="$(du -sh .venv | cut -f1)"
echo "fresh-check ($commit, $(python3 --version 2>&1)):"
echo "  set-up (venv from the lock, nothing cached): $((t1 - t0)) s"
echo "  make test:                                  $((t2 - t1)) s"
[ "${FRESH_DEMO:-1}" != 0 ] && echo "  make demo (cold: corpus, toy model, sweep):  $((t3 - t2)) s"
if [ "${FRESH_DEMO:-1}" != 0 ]; then
  cat "$tmp/demo/timing.md"
  mkdir -p "$root/outputs" && rm -rf "$root/outputs/fresh_check_demo" && cp -r "$tmp/demo" "$root/outputs/fresh_check_demo"
  echo "  the demo's output dir: $root/outputs/fresh_check_demo (README: python -m src.demo --readme it)"
fi
echo "  venv size:                                  $size"
