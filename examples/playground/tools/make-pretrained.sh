#!/usr/bin/env bash
# Trains the playground's shipped checkpoints with the CLI and copies them to public/pretrained/:
# a VQ tokenizer (tools/tokenizer-config.json: ch 8, chMult 1,2,2, 128 codes of 8, 8x8 tokens;
# 31k parameters; latent perturbation as --perturb paper) and a class-conditional AR generator
# (dim 48, depth 2, 69k parameters) over its codes of 10,000 training images. The files are the
# CLI's training checkpoints as written (weights, AdamW moments, config): 0.39 + 0.84 MB.
# Measured on 2 cores with lavapipe shared with other jobs (load average ~10): 7.5 + 3.7 minutes.
# Run from the repository root:
#   bash examples/playground/tools/make-pretrained.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=runs/playground
npx tsx node/cli.ts train-tokenizer --out "$out/tokenizer" --config examples/playground/tools/tokenizer-config.json \
  --perturb paper --steps 600 --batch 32 --lr 2e-3 --log-every 100 --fresh
npx tsx node/cli.ts train-ar --tokenizer "$out/tokenizer" --out "$out/ar" --limit 10000 \
  --dim 48 --depth 2 --heads 2 --steps 250 --batch 64 --lr 2e-3 --log-every 50 --sample-every 250 --fresh
mkdir -p examples/playground/public/pretrained
cp "$out/tokenizer/checkpoint.safetensors" examples/playground/public/pretrained/tokenizer.safetensors
cp "$out/ar/checkpoint.safetensors" examples/playground/public/pretrained/ar.safetensors
ls -l examples/playground/public/pretrained
