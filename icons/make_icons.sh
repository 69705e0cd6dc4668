#!/usr/bin/env bash
# Draws Dialora's icon (a speech bubble with summary lines) at every size the window and the
# installers use. Needs ImageMagick; the PNGs are committed, so only a change of design runs this.
set -euo pipefail
cd "$(dirname "$0")"
convert -size 512x512 xc:none \
  -fill '#1f6feb' -draw 'roundrectangle 40,48 472,392 72,72' \
  -fill '#1f6feb' -draw 'polygon 120,380 120,470 220,380' \
  -fill '#ffffff' -draw 'roundrectangle 110,130 402,162 16,16' \
  -fill '#ffffff' -draw 'roundrectangle 110,204 402,236 16,16' \
  -fill '#9ecbff' -draw 'roundrectangle 110,278 310,310 16,16' \
  icon-512.png
for size in 16 32 48 64 128 256; do
  convert icon-512.png -resize "${size}x${size}" "icon-${size}.png"
done
