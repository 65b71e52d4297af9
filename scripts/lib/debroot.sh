# Throwaway Debian 12 roots for the tests that install retrofarm into one (ansible/test.sh,
# packaging/test-debs.sh). Source it, then:
#
#   debroot_workdir NAME     # sets $work (a fresh /tmp/retrofarm-NAME.XXXXXX, or
#                            # $RETROFARM_TEST_WORKDIR kept and reused) and $keep, and removes
#                            # the folder and anything mounted under $root on exit
#   debroot_make ROOT        # ROOT: a copy of a debootstrap minbase root (python3, python3-apt,
#                            # systemd) made once per work folder from $mirror, where package
#                            # scripts start no service (policy-rc.d), with the host's resolv.conf
#
# Both scripts use the same layout ($work/base), so one RETROFARM_TEST_WORKDIR serves both.

mirror="${RETROFARM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

debroot_workdir() {
    if [ -n "${RETROFARM_TEST_WORKDIR:-}" ]; then
        work="$RETROFARM_TEST_WORKDIR"
        mkdir -p "$work"
        keep=1
    else
        work="$(mktemp -d "/tmp/retrofarm-$1.XXXXXX")"
        keep=0
    fi
    trap debroot_cleanup EXIT
}

debroot_cleanup() {
    local m
    # Anything a package script mounted inside the root, innermost first.
    for m in $(awk -v r="${root:-$work/none}" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    if [ "$keep" -eq 0 ]; then
        rm -rf "$work"
    fi
}

debroot_make() {
    local target="$1"
    if [ ! -f "$work/base/.complete" ]; then
        rm -rf "$work/base"
        debootstrap --variant=minbase --include=python3,python3-apt,systemd bookworm "$work/base" "$mirror" \
            >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; return 1; }
        touch "$work/base/.complete"
    fi
    rm -rf "$target"
    cp -a "$work/base" "$target"
    rm -f "$target/.complete"
    # Services cannot start in a chroot: tell package scripts so, as Debian's chroots do.
    printf '#!/bin/sh\nexit 101\n' >"$target/usr/sbin/policy-rc.d"
    chmod 755 "$target/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$target/etc/resolv.conf"
}
