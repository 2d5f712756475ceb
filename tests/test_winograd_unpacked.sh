#!/usr/bin/env bash
# tests/test_winograd_unpacked.sh — tests/test_winograd.lua again with the forward on packed
# panels turned off (SKD_WG_PACKED=0), so that the layers it would take at batch 1 and 2 go
# through the transformed kernel in memory and BLIS's sgemm, as larger batches always do.
cd "$(dirname "$0")/.."
SKD_WG_PACKED=0 exec "${SKD_BIN:-./build/skd-lua}" tests/test_winograd.lua
