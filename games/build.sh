#!/usr/bin/env bash
# Build "Retrofarm Walk.nes" from games/src/walk.s with ca65/ld65 (Debian
# package: cc65).
#
#   games/build.sh           assemble and (re)write "games/Retrofarm Walk.nes"
#   games/build.sh --check   assemble into a temporary directory and compare
#                            with the committed ROM; exit 1 if they differ
#
# Exit status: 0 success / ROM matches, 1 ROM differs or is missing (--check),
# 2 usage error or missing tools, other non-zero: assembler/linker failure.
# Safe to run repeatedly and from any working directory; the output only
# depends on the sources (no timestamps or paths end up in the ROM).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/src"
rom="$here/Retrofarm Walk.nes"

mode=build
case "${1-}" in
    "") ;;
    --check) mode=check ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

for tool in ca65 ld65; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found (install the Debian package 'cc65')" >&2
        exit 2
    fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

ca65 "$src/walk.s" -o "$tmp/walk.o"
ld65 -C "$src/nrom.cfg" "$tmp/walk.o" -o "$tmp/walk.nes"

size=$(wc -c <"$tmp/walk.nes")
if [ "$size" -ne 24592 ]; then
    echo "error: built ROM is $size bytes, expected 24592" >&2
    exit 1
fi

if [ "$mode" = check ]; then
    if [ ! -f "$rom" ]; then
        echo "check failed: $rom does not exist (run games/build.sh)" >&2
        exit 1
    fi
    if cmp -s "$tmp/walk.nes" "$rom"; then
        echo "ok: $rom matches games/src"
        exit 0
    fi
    echo "check failed: $rom differs from what games/src assembles to (run games/build.sh)" >&2
    exit 1
fi

if [ -f "$rom" ] && cmp -s "$tmp/walk.nes" "$rom"; then
    echo "up to date: $rom"
else
    # Copy next to the target first so the final rename is atomic.
    cp "$tmp/walk.nes" "$rom.new"
    mv -f "$rom.new" "$rom"
    echo "built: $rom"
fi
