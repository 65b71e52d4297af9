#!/usr/bin/env bash
# Fetch the libretro cores the tests and workers use (every core of docs/systems.md that Debian 12
# ships: nestopia, mgba, gambatte, bsnes-mercury, beetle-psx, beetle-pce-fast, beetle-wswan,
# beetle-vb, desmume) into <repo>/.deps/cores without `apt-get install libretro-*`, which would
# drag in RetroArch and ~120 desktop packages. Idempotent: a core already extracted is left alone.
#
#   scripts/fetch-cores.sh            # fetch into .deps/cores
#   CORES_DIR=/elsewhere scripts/fetch-cores.sh
#
# Result: .deps/cores/usr/lib/x86_64-linux-gnu/libretro/<core>_libretro.so (see so_name below).
# Missing shared-library dependencies of the cores (seen with ldd) are installed with apt-get,
# preferring the package the core's own Depends names (desmume: libtinyxml2.6.2v5, beetle-psx:
# libtrio2).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cores_dir="${CORES_DIR:-$repo_root/.deps/cores}"
lib_dir="$cores_dir/usr/lib/x86_64-linux-gnu/libretro"
packages=(
    libretro-nestopia                  # NES
    libretro-mgba                      # GBA
    libretro-gambatte                  # Game Boy, Game Boy Color
    libretro-bsnes-mercury-performance # SNES (the fastest of Debian's three bsnes-mercury builds)
    libretro-beetle-psx                # PlayStation (software renderer)
    libretro-beetle-pce-fast           # PC Engine / TurboGrafx-16
    libretro-beetle-wswan              # WonderSwan, WonderSwan Color
    libretro-beetle-vb                 # Virtual Boy
    libretro-desmume                   # Nintendo DS
)
apt_opts=(-o DPkg::Lock::Timeout=900)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
fi

so_name() {
    case "$1" in
        libretro-nestopia) echo nestopia_libretro.so ;;
        libretro-mgba) echo mgba_libretro.so ;;
        libretro-gambatte) echo gambatte_libretro.so ;;
        libretro-bsnes-mercury-performance) echo bsnes_mercury_performance_libretro.so ;;
        libretro-beetle-psx) echo mednafen_psx_libretro.so ;;
        libretro-beetle-pce-fast) echo mednafen_pce_fast_libretro.so ;;
        libretro-beetle-wswan) echo mednafen_wswan_libretro.so ;;
        libretro-beetle-vb) echo mednafen_vb_libretro.so ;;
        libretro-desmume) echo desmume_libretro.so ;;
        *) echo "unknown package $1" >&2; return 1 ;;
    esac
}

# The Debian package that ships shared library $1 for core package $2: a package of the core's
# own Depends whose name starts with the library's (libtinyxml.so.2.6.2 -> libtinyxml2.6.2v5),
# then by the naming convention (libfoo.so.1 -> libfoo1, libfoo2.so.0 -> libfoo2-0), then by
# searching names, preferring runtime packages over -dev/-dbg ones.
package_for_lib() {
    local lib="$1" pkg="$2" base ver cand
    base="${lib%%.so*}"
    ver="${lib##*.so.}"
    ver="${ver%%.*}"
    if [ -f "$depends_dir/$pkg" ]; then
        for cand in $(tr ',|' '\n\n' <"$depends_dir/$pkg" | sed 's/(.*//; s/^ *//; s/ *$//'); do
            case "$cand" in
                "$base"*) echo "$cand"; return ;;
            esac
        done
    fi
    for cand in "$base$ver" "$base-$ver" "${base}t64" "$base$ver"t64; do
        if apt-cache show "$cand" >/dev/null 2>&1; then
            echo "$cand"
            return
        fi
    done
    apt-cache search --names-only "^$(printf '%s' "$base" | sed 's/[+.]/\\&/g')" \
        | awk '{print $1}' | { grep -vE -- '-(dev|dbg|doc)$' || true; } | head -n1
}

# Each core package's Depends line, kept after its .deb is gone (for package_for_lib).
depends_dir="$cores_dir/depends"
mkdir -p "$cores_dir" "$depends_dir"
apt_updated=0
apt_update_once() {
    if [ "$apt_updated" -eq 0 ]; then
        "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update -qq
        apt_updated=1
    fi
}

for pkg in "${packages[@]}"; do
    so="$(so_name "$pkg")"
    if [ -f "$lib_dir/$so" ]; then
        echo "fetch-cores: $so already present"
        continue
    fi
    work="$(mktemp -d)"
    # `apt-get download` writes into the current directory and needs no root.
    if ! (cd "$work" && apt-get "${apt_opts[@]}" download "$pkg" >/dev/null 2>&1); then
        apt_update_once
        (cd "$work" && apt-get "${apt_opts[@]}" download "$pkg")
    fi
    deb="$(ls "$work"/*.deb)"
    dpkg-deb -x "$deb" "$cores_dir"
    dpkg-deb -f "$deb" Depends >"$depends_dir/$pkg"
    rm -rf "$work"
    echo "fetch-cores: extracted $pkg -> $lib_dir/$so"
done

# Shared libraries the cores need that this machine lacks: find the Debian package that ships
# each and install it (plain libraries, no frontend).
for pkg in "${packages[@]}"; do
    so="$lib_dir/$(so_name "$pkg")"
    missing="$(ldd "$so" | awk '/not found/ {print $1}')"
    for lib in $missing; do
        apt_update_once
        dep="$(package_for_lib "$lib" "$pkg")"
        if [ -z "$dep" ]; then
            echo "fetch-cores: no package found for $lib (needed by $so)" >&2
            exit 1
        fi
        echo "fetch-cores: installing $dep for $lib"
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y --no-install-recommends "$dep"
    done
    if ldd "$so" | grep -q "not found"; then
        echo "fetch-cores: $so still has missing libraries:" >&2
        ldd "$so" | grep "not found" >&2
        exit 1
    fi
done

echo "fetch-cores: cores ready in $lib_dir"
