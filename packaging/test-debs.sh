#!/usr/bin/env bash
# Installs the packages packaging/build-debs.sh made into a throwaway Debian 12 root and checks
# what their maintainer scripts (cargo-deb's systemd/sysusers code plus packaging/deb/*) do:
#   install  - the retrofarm user, /etc/retrofarm/{coordinator,worker}.toml root:retrofarm 0640
#              (dpkg-statoverride), /etc/retrofarm/pki root:retrofarm 0750, both units enabled
#              and not started, the games folder with the homebrew game;
#   upgrade  - to a copy of each package with a higher version and a changed conffile: dpkg
#              replaces the conffile and keeps root:retrofarm 0640, the units stay enabled;
#   remove   - the units masked, the configuration kept;
#   purge    - the statoverrides, masks and enablement gone; the user, keys and games kept.
#
#   packaging/test-debs.sh [DEB_DIR]        # default target/debian; needs root and Debian's mirror
#
# No service runs in the root (a policy-rc.d forbids starts, and systemd is not PID 1 there), so
# the start/restart/stop parts of the scripts are not exercised; what they are is printed by
#   dpkg-deb -e target/debian/retrofarm-worker_*.deb DIR
# RETROFARM_TEST_WORKDIR=DIR keeps the folder and reuses its debootstrap root (the same layout
# as ansible/test.sh, so both can share one).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deb_dir="${1:-$repo/target/debian}"
# shellcheck source=../scripts/lib/debroot.sh
. "$repo/scripts/lib/debroot.sh" # $mirror, debroot_workdir, debroot_make

if [ "$(id -u)" -ne 0 ]; then
    echo "test-debs: SKIPPED (needs root for debootstrap and chroot)"
    exit 0
fi
worker_deb="$(find "$deb_dir" -maxdepth 1 -name 'retrofarm-worker_*.deb' | sort | tail -1)"
coordinator_deb="$(find "$deb_dir" -maxdepth 1 -name 'retrofarm-coordinator_*.deb' | sort | tail -1)"
if [ -z "$worker_deb" ] || [ -z "$coordinator_deb" ]; then
    echo "test-debs: no retrofarm-{worker,coordinator}_*.deb in $deb_dir (packaging/build-debs.sh)" >&2
    exit 1
fi
command -v debootstrap >/dev/null 2>&1 ||
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends debootstrap >/dev/null

debroot_workdir debs
root="$work/debroot"

passed=0
failed=0
check() {
    # check DESCRIPTION COMMAND...: one assertion.
    local what="$1"
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "   ok   $what"
    else
        failed=$((failed + 1))
        echo "   FAIL $what"
    fi
}
in_root() { chroot "$root" "$@"; }
mode_is() { [ "$(in_root stat -c '%a %U %G' "$1" 2>/dev/null)" = "$2" ]; }
enabled() { [ -L "$root/etc/systemd/system/multi-user.target.wants/$1.service" ]; }
masked() { [ "$(readlink "$root/etc/systemd/system/$1.service" 2>/dev/null)" = /dev/null ]; }
override() { in_root dpkg-statoverride --list "$1" >/dev/null 2>&1; }
not() { ! "$@"; }
apt_in_root() {
    in_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 -y -q "$@" \
        >>"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; return 1; }
}

echo "== Debian 12 root (debootstrap minbase)"
debroot_make "$root" || exit 1
mkdir -p "$root/tmp/debs"
: >"$work/apt.log"

# The same packages with version +1 and one more line in each conffile: an upgrade in which
# dpkg replaces the (unmodified) conffile.
bump() {
    local deb="$1" out="$2" dir
    dir="$(mktemp -d "$work/bump.XXXXXX")"
    dpkg-deb -R "$deb" "$dir"
    sed -i 's/^Version: \(.*\)$/Version: \1+upgrade1/' "$dir/DEBIAN/control"
    while read -r conffile; do
        echo "# upgraded" >>"$dir$conffile"
    done <"$dir/DEBIAN/conffiles"
    dpkg-deb -Zxz -z1 --root-owner-group -b "$dir" "$out" >/dev/null
    rm -rf "$dir"
}
cp "$worker_deb" "$root/tmp/debs/worker.deb"
cp "$coordinator_deb" "$root/tmp/debs/coordinator.deb"
bump "$worker_deb" "$root/tmp/debs/worker-upgrade.deb"
bump "$coordinator_deb" "$root/tmp/debs/coordinator-upgrade.deb"

echo "== install $(basename "$worker_deb") $(basename "$coordinator_deb")"
apt_in_root update -qq || exit 1
apt_in_root install --no-install-recommends /tmp/debs/worker.deb /tmp/debs/coordinator.deb || exit 1
check "the retrofarm user and group exist" eval 'in_root getent passwd retrofarm >/dev/null && in_root getent group retrofarm >/dev/null'
check "sysusers.d files installed" test -f "$root/usr/lib/sysusers.d/retrofarm-worker.conf" -a -f "$root/usr/lib/sysusers.d/retrofarm-coordinator.conf"
check "worker.toml is 640 root:retrofarm" mode_is /etc/retrofarm/worker.toml "640 root retrofarm"
check "coordinator.toml is 640 root:retrofarm" mode_is /etc/retrofarm/coordinator.toml "640 root retrofarm"
check "both conffiles have a statoverride" eval 'override /etc/retrofarm/worker.toml && override /etc/retrofarm/coordinator.toml'
check "/etc/retrofarm/pki is 750 root:retrofarm" mode_is /etc/retrofarm/pki "750 root retrofarm"
check "retrofarm-worker.service enabled" enabled retrofarm-worker
check "retrofarm-coordinator.service enabled" enabled retrofarm-coordinator
check "the homebrew game is linked into /var/lib/retrofarm/games" test -L "$root/var/lib/retrofarm/games/Retrofarm Walk.nes"
check "/var/lib/retrofarm/games is 750 retrofarm:retrofarm" mode_is /var/lib/retrofarm/games "750 retrofarm retrofarm"
check "the binaries run" eval 'in_root retrofarm-worker --version >/dev/null && in_root retrofarm-coordinator --version >/dev/null'
verify_unit() {
    local out
    out="$(systemd-analyze verify --root="$root" "/usr/lib/systemd/system/$1.service" 2>&1)"
    [ -z "$out" ] || { echo "$out" | sed 's/^/        /'; return 1; }
}
for unit in retrofarm-worker retrofarm-coordinator; do
    check "systemd-analyze verify $unit.service prints nothing" verify_unit "$unit"
done

echo "== upgrade (conffiles changed upstream, not locally)"
apt_in_root install --no-install-recommends /tmp/debs/worker-upgrade.deb /tmp/debs/coordinator-upgrade.deb || exit 1
check "the new worker.toml was installed" grep -q '^# upgraded' "$root/etc/retrofarm/worker.toml"
check "the new coordinator.toml was installed" grep -q '^# upgraded' "$root/etc/retrofarm/coordinator.toml"
check "worker.toml is still 640 root:retrofarm" mode_is /etc/retrofarm/worker.toml "640 root retrofarm"
check "coordinator.toml is still 640 root:retrofarm" mode_is /etc/retrofarm/coordinator.toml "640 root retrofarm"
check "both units still enabled" eval 'enabled retrofarm-worker && enabled retrofarm-coordinator'

echo "== remove"
apt_in_root remove retrofarm-worker retrofarm-coordinator || exit 1
check "retrofarm-worker.service masked" masked retrofarm-worker
check "retrofarm-coordinator.service masked" masked retrofarm-coordinator
check "the configuration stays, 640 root:retrofarm" eval 'mode_is /etc/retrofarm/worker.toml "640 root retrofarm" && mode_is /etc/retrofarm/coordinator.toml "640 root retrofarm"'

echo "== purge"
apt_in_root purge retrofarm-worker retrofarm-coordinator || exit 1
check "no statoverride left" eval 'not override /etc/retrofarm/worker.toml && not override /etc/retrofarm/coordinator.toml'
check "no mask left" eval 'not masked retrofarm-worker && not masked retrofarm-coordinator'
check "no enablement left" eval 'not enabled retrofarm-worker && not enabled retrofarm-coordinator'
check "the configuration is gone" eval '[ ! -e "$root/etc/retrofarm/worker.toml" ] && [ ! -e "$root/etc/retrofarm/coordinator.toml" ]'
check "the user, the keys folder and the games stay" eval 'in_root getent passwd retrofarm >/dev/null && [ -d "$root/etc/retrofarm/pki" ] && [ -d "$root/var/lib/retrofarm/games" ]'

echo "packages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
