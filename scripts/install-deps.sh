#!/usr/bin/env bash
# Installs, idempotently, every Debian package skd needs to build, test and view.
# Safe to run repeatedly: it asks apt only for what dpkg says is missing.
set -euo pipefail

PKGS=(
  build-essential pkg-config
  liblua5.4-dev lua5.4            # the embedded interpreter (and a plain lua for checks)
  libblis-dev libblis-openmp-dev libblis4-openmp   # BLIS, OpenMP-threaded
  libsdl2-dev libsdl2-ttf-dev fonts-dejavu-core    # the viewer, its text and its font
  libpng-dev                      # images, labels, screenshots
  libreadline-dev                 # the REPL
  xvfb xauth                      # the viewer's tests without a display
  python3                         # test helpers (independent safetensors writer)
)
# Optional: PyTorch as an independent reference in tests and benchmarks (never a dependency
# of the product). SKD_WITH_TORCH=1 adds it.
if [ "${SKD_WITH_TORCH:-0}" = 1 ]; then PKGS+=(python3-torch python3-numpy); fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
