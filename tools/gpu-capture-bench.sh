#!/usr/bin/env bash
# Eager against captured (replayed) training steps on a lent GPU, in one device call: the
# tokenizer step at batch 64 and 256 (the ratios of issue 12, to be set beside PyTorch's figures
# in ../shared/gpu/README.md) and the host/GPU split of the tokenizer and AR steps.
# Prepare here: tools/pack-gpu-bench.sh && ../shared/gpu/make-bundle.sh
# Device command (carry [".gpu-bundle", "bench/dist"], timeout_s ~300):
#   source .gpu-bundle/setup.sh && bash tools/gpu-capture-bench.sh
# BATCHES="64 256" and STEPS=10 by default (PROFILE_BATCH overrides the profiled steps' batch, 128 / 256);
# every result goes to $OUT/capture-bench.log.
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
for f in tokenizer-step profile-step; do
  [ -f "bench/dist/$f.mjs" ] || { echo "gpu-capture-bench: bench/dist/$f.mjs is missing: run tools/pack-gpu-bench.sh first" >&2; exit 2; }
done
OUT=${OUT:-${OUT_DIR:-runs/gpu-capture-bench}}
mkdir -p "$OUT"
log="$OUT/capture-bench.log"
: > "$log"
for b in ${BATCHES:-64 256}; do
  for c in 0 1; do
    CAPTURE=$c BATCH=$b STEPS=${STEPS:-10} PERTURB=none node bench/dist/tokenizer-step.mjs 2>/dev/null | tee -a "$log"
  done
done
for m in tokenizer ar; do
  for c in 0 1; do
    echo "== MODEL=$m CAPTURE=$c" | tee -a "$log"
    env ${PROFILE_BATCH:+BATCH=$PROFILE_BATCH} CAPTURE=$c MODEL=$m TOP=${TOP:-8} node bench/dist/profile-step.mjs 2>/dev/null | head -${LINES_PER:-14} | tee -a "$log"
  done
done
