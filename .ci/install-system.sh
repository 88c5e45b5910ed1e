#!/usr/bin/env bash
# Installs what a fresh machine lacks for the demo and the tests (CI runs it on Debian bookworm;
# `npm run setup` runs it before `npm ci`):
# - Node.js 20 or newer is checked, not installed (Debian 12's own nodejs is 18).
# - Linux: a Vulkan driver for Dawn, Mesa's (with lavapipe, the software one for machines without
#   a GPU). On Debian bookworm it comes from bookworm-backports: bookworm's own Mesa is too old
#   for Dawn. Other Debian and Ubuntu releases get their own mesa-vulkan-drivers.
# - Debian: Chromium for the browser test (test/browser.test.ts; WebGPU on its SwiftShader). On
#   Ubuntu the apt chromium is a snap wrapper; without Chromium that test is skipped.
# - macOS and Windows: nothing; Dawn uses Metal / Direct3D 12, which the system provides.
set -euo pipefail

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "webgpu-tok needs Node.js 20 or newer, found $(node --version 2>/dev/null || echo none) (Debian 12's nodejs is 18): install it from https://nodejs.org or with nvm" >&2
  exit 1
fi
if [ "$(uname -s)" != Linux ]; then
  echo "$(uname -s): no system packages needed (Dawn uses Metal on macOS, Direct3D 12 on Windows)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "not a Debian/Ubuntu system: install your distribution's Mesa Vulkan drivers (with lavapipe) and the Vulkan loader, then run npm ci" >&2
  exit 1
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
. /etc/os-release
apt_install() { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"; }

if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || ! dpkg -s libvulkan1 >/dev/null 2>&1 \
     || ! dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q bpo; then
    src=/etc/apt/sources.list.d/bookworm-backports.sources
    if [ ! -f "$src" ]; then
      # Same mirror and keyring as the stock debian.sources entry.
      uris=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
      [ -n "$uris" ] || uris="http://deb.debian.org/debian"
      $SUDO tee "$src" >/dev/null <<SRC
Types: deb
URIs: $uris
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    $SUDO apt-get update -qq
    apt_install -t bookworm-backports mesa-vulkan-drivers libvulkan1
  fi
elif ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || ! dpkg -s libvulkan1 >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  apt_install mesa-vulkan-drivers libvulkan1
fi

if [ "${ID:-}" = debian ] && ! command -v chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  apt_install chromium
fi
