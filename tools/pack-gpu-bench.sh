#!/usr/bin/env bash
# Bundles the training-step benchmarks for a lent GPU machine (no npm there) into bench/dist/:
# tokenizer-step.mjs (ms per step + memory; CONV_IMPLICIT=0|1 switches the conv path),
# conv-small.mjs (per conv shape), profile-step.mjs (per-kernel GPU time, MODEL=tokenizer|ar).
# Carry [".gpu-bundle", "bench/dist"] (../shared/gpu/make-bundle.sh makes .gpu-bundle); on the
# device, from the project root, e.g.:
#   source .gpu-bundle/setup.sh && export WEBGPU_TOK_DAWN_FLAGS=disable-dawn-features=timestamp_quantization && \
#   for c in 0 1; do CONV_IMPLICIT=$c BATCH=128 PERTURB=none node bench/dist/tokenizer-step.mjs; done && \
#   MODEL=ar node bench/dist/profile-step.mjs
# Eager against replayed steps (E.captureStep): tools/gpu-capture-bench.sh.
# (the question the next GPU session answers: is the implicit-GEMM conv faster on a GPU too, so
# that it can be on by default there; see engine/ops/conv-implicit.ts implicitConvByDefault).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p bench/dist
for b in tokenizer-step conv-small profile-step; do
  npx esbuild "bench/$b.ts" --bundle --platform=node --format=esm --target=node20 --external:webgpu \
    --outfile="bench/dist/$b.mjs" --log-level=warning \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
done
du -h bench/dist/{tokenizer-step,conv-small,profile-step}.mjs
