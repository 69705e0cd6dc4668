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
# Windows (MSI, the executable's resource) takes an .ico with several sizes.
convert icon-16.png icon-32.png icon-48.png icon-64.png icon-128.png icon-256.png icon.ico
# macOS (DMG) takes an .icns: a header, then PNG entries, each a 4-letter type and a big-endian
# length that counts its own 8 bytes.
entry() { printf '%s' "$1"; printf '%08x' $(($(stat -c %s "$2") + 8)) | xxd -r -p; cat "$2"; }
{
  entry icp4 icon-16.png
  entry icp5 icon-32.png
  entry icp6 icon-64.png
  entry ic07 icon-128.png
  entry ic08 icon-256.png
  entry ic09 icon-512.png
} >icon.icns.body
{ printf 'icns'; printf '%08x' $(($(stat -c %s icon.icns.body) + 8)) | xxd -r -p; cat icon.icns.body; } >icon.icns
rm icon.icns.body
