#!/usr/bin/env bash
# Tests of the Ansible roles and playbooks:
#   1. ansible-lint --profile production;
#   2. ansible-playbook --syntax-check of every playbook;
#   3. convergence: a throwaway Debian 12 root (debootstrap, minbase + python3 + systemd) gets
#      the worker, coordinator, monitoring (and gpu_host, which must skip it: no GPU) roles through
#      community.general.chroot; a second run must change nothing; every systemd unit we install
#      must pass `systemd-analyze verify --root` without a word; the installed binaries must run
#      and the written configuration files must parse.
#
#   ansible/test.sh
#
# Convergence needs root (debootstrap, chroot) and Debian's mirror. It installs retrofarm with
# retrofarm_package_source=binaries: the debug binaries the test suite builds anyway
# (target/debug, or RETROFARM_BIN_DIR), no release build or cargo-deb (CI time). Grafana's apt
# repository is not reachable from CI, so monitoring_grafana_install=false (the provisioning
# files are still written and checked). Everything lives in a temporary folder that is removed
# at the end; RETROFARM_TEST_WORKDIR=DIR keeps it (and reuses its debootstrap root) instead.
# Installs ansible, ansible-lint and debootstrap from Debian when missing.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
export ANSIBLE_CONFIG="$here/ansible.cfg"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_FORCE_COLOR=0
export PY_COLORS=0
apt_opts=(-o DPkg::Lock::Timeout=900)
mirror="${RETROFARM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
playbooks=(site.yml gpu_host.yml farm_worker.yml coordinator.yml monitoring.yml)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
fi

need=()
command -v ansible-playbook >/dev/null 2>&1 || need+=(ansible)
command -v ansible-lint >/dev/null 2>&1 || need+=(ansible-lint)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ "${#need[@]}" -gt 0 ]; then
    echo "test: installing ${need[*]} (apt)"
    "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update -qq
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        { echo "test: cannot install ${need[*]}" >&2; exit 1; }
fi

passed=0
failed=0
skipped=0
failures=()
step() {
    local name="$1"
    shift
    local start=$SECONDS
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "   ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "   FAILED ($((SECONDS - start)) s)"
    fi
}

# --- 1, 2: lint and syntax -----------------------------------------------------------------------

lint() { (cd "$here" && ansible-lint --profile production --nocolor); }
syntax() {
    local p ok=0
    for p in "${playbooks[@]}"; do
        (cd "$here" && ansible-playbook --syntax-check -i inventory.example.yml "$p" >/dev/null) || { echo "   syntax error in $p"; ok=1; }
    done
    return $ok
}
step "ansible-lint --profile production" lint
step "ansible-playbook --syntax-check (${#playbooks[@]} playbooks)" syntax

# --- 3: convergence in a chroot ------------------------------------------------------------------

if [ "$(id -u)" -ne 0 ]; then
    echo "== convergence: SKIPPED (needs root for debootstrap and chroot)"
    skipped=$((skipped + 1))
    echo "ansible: $passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
    exit
fi

if [ -n "${RETROFARM_TEST_WORKDIR:-}" ]; then
    work="$RETROFARM_TEST_WORKDIR"
    mkdir -p "$work"
    keep=1
else
    work="$(mktemp -d /tmp/retrofarm-ansible.XXXXXX)"
    keep=0
fi
root="$work/root"
cleanup() {
    local m
    # Anything a package script mounted inside the root, innermost first.
    for m in $(awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    if [ "$keep" -eq 0 ]; then
        rm -rf "$work"
    fi
}
trap cleanup EXIT

bin_dir="${RETROFARM_BIN_DIR:-$repo/target/debug}"
binaries() {
    local b missing=()
    for b in retrofarm-worker retrofarm-emulator retrofarm-coordinator; do
        [ -x "$bin_dir/$b" ] || missing+=("$b")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ -n "${RETROFARM_BIN_DIR:-}" ]; then
            echo "   $bin_dir lacks ${missing[*]}"
            return 1
        fi
        echo "   building the debug binaries (the test suite's profile)"
        (cd "$repo" && cargo build -q -p retrofarm-coordinator -p farm-worker -p retrofarm-emulator --bins)
    fi
}

debian_root() {
    if [ ! -f "$work/base/.complete" ]; then
        rm -rf "$work/base"
        debootstrap --variant=minbase --include=python3,python3-apt,systemd bookworm "$work/base" "$mirror" \
            >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; return 1; }
        touch "$work/base/.complete"
    fi
    rm -rf "$root"
    cp -a "$work/base" "$root"
    rm -f "$root/.complete"
    # Services cannot start in a chroot: tell package scripts so, as Debian's chroots do.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
}

inventory() {
    cat >"$work/inventory.yml" <<EOF
# Written by ansible/test.sh: one chroot that is worker, coordinator and monitoring host at once.
all:
  vars:
    ansible_connection: community.general.chroot
    ansible_python_interpreter: /usr/bin/python3
    ansible_become: false
    retrofarm_package_source: binaries
    retrofarm_binaries_dir: "$bin_dir"
    retrofarm_pki_local_dir: "$work/pki"
    retrofarm_pki_cli: "$bin_dir/retrofarm-coordinator"
    retrofarm_coordinator_server_name: coord.test.invalid
    monitoring_grafana_install: false
  children:
    coordinator:
      hosts:
        farm-test:
    monitoring:
      hosts:
        farm-test:
    workers:
      children:
        workers_eu:
          vars:
            zone: eu
          hosts:
            farm-test:
              ansible_host: "$root"
              retrofarm_address: 127.0.0.1
              farm_worker_public_ip: 192.0.2.10
EOF
}

converge() {
    local log="$work/run$1.log"
    (cd "$here" && ansible-playbook -i "$work/inventory.yml" site.yml) >"$log" 2>&1
    local rc=$?
    sed -n '/PLAY RECAP/,$p' "$log"
    if [ $rc -ne 0 ]; then
        grep -E -B2 -A12 '^(fatal|failed):|ERROR!' "$log" | head -60
        echo "   ansible-playbook exited $rc (log: $log)"
        return 1
    fi
    recap="$(grep -E '^farm-test +:' "$log")"
    echo "$recap" | grep -q 'failed=0' || return 1
    echo "$recap" | grep -q 'unreachable=0' || return 1
}

idempotent() {
    converge 2 || return 1
    if ! echo "$recap" | grep -q ' changed=0 '; then
        echo "   the second run changed something:"
        grep -E -A1 '^changed:' "$work/run2.log" | head -40
        return 1
    fi
}

verify_units() {
    local ok=0 unit out
    # The GPU role skipped this host (no GPU); verify its unit too, as it would be installed.
    install -m 0644 "$here/roles/gpu_host/files/dcgm-exporter.service" "$root/etc/systemd/system/dcgm-exporter.service"
    printf '#!/bin/sh\n' >"$root/usr/local/bin/dcgm-exporter"
    chmod 755 "$root/usr/local/bin/dcgm-exporter"
    for unit in /lib/systemd/system/retrofarm-worker.service /lib/systemd/system/retrofarm-coordinator.service \
        /etc/systemd/system/dcgm-exporter.service; do
        if [ ! -f "$root$unit" ]; then
            echo "   $unit was not installed"
            ok=1
            continue
        fi
        out="$(systemd-analyze verify --root="$root" "$unit" 2>&1)"
        if [ -n "$out" ]; then
            echo "   $unit:"
            echo "$out" | sed 's/^/     /'
            ok=1
        else
            echo "   $unit: no warnings"
        fi
    done
    rm -f "$root/etc/systemd/system/dcgm-exporter.service" "$root/usr/local/bin/dcgm-exporter"
    return $ok
}

installed_state() {
    local ok=0 f
    # The binaries run inside the root (their libraries are there) and the configuration the
    # roles wrote parses as TOML (the services reject unknown keys; the lead's tests cover that).
    chroot "$root" /usr/bin/retrofarm-worker --version >/dev/null || { echo "   retrofarm-worker does not run"; ok=1; }
    chroot "$root" /usr/bin/retrofarm-coordinator --version >/dev/null || { echo "   retrofarm-coordinator does not run"; ok=1; }
    for f in /etc/retrofarm/worker.toml /etc/retrofarm/coordinator.toml; do
        chroot "$root" python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$f" ||
            { echo "   $f is not valid TOML"; ok=1; }
    done
    # Keys readable by the service group only; the service user exists; units enabled.
    [ "$(chroot "$root" stat -c '%a %U %G' /etc/retrofarm/pki/farm-test.key)" = "640 root retrofarm" ] ||
        { echo "   worker key has the wrong mode/owner"; ok=1; }
    [ "$(chroot "$root" stat -c '%a %U %G' /etc/retrofarm/pki/coordinator.key)" = "640 root retrofarm" ] ||
        { echo "   coordinator key has the wrong mode/owner"; ok=1; }
    chroot "$root" getent passwd retrofarm >/dev/null || { echo "   no retrofarm user"; ok=1; }
    for f in retrofarm-worker retrofarm-coordinator prometheus; do
        [ -L "$root/etc/systemd/system/multi-user.target.wants/$f.service" ] || { echo "   $f is not enabled"; ok=1; }
    done
    # The cores were unpacked, the homebrew game linked, Prometheus got targets from the inventory.
    [ -f "$root/opt/retrofarm/cores/usr/lib/x86_64-linux-gnu/libretro/nestopia_libretro.so" ] || { echo "   no nestopia core"; ok=1; }
    [ -f "$root/opt/retrofarm/cores/usr/lib/x86_64-linux-gnu/libretro/mgba_libretro.so" ] || { echo "   no mgba core"; ok=1; }
    [ -L "$root/var/lib/retrofarm/games/Retrofarm Walk.nes" ] || { echo "   the homebrew game is not in the games folder"; ok=1; }
    grep -q 'zone: "eu"' "$root/etc/prometheus/prometheus.yml" || { echo "   no zone label in prometheus.yml"; ok=1; }
    chroot "$root" promtool check config /etc/prometheus/prometheus.yml >/dev/null || { echo "   promtool rejects prometheus.yml"; ok=1; }
    [ -f "$root/var/lib/grafana/dashboards/retrofarm/retrofarm-overview.json" ] || { echo "   dashboards not provisioned"; ok=1; }
    return $ok
}

step "binaries to install ($bin_dir)" binaries
step "Debian 12 root (debootstrap minbase)" debian_root
inventory
step "converge: first run of site.yml" converge 1
step "converge: second run changes nothing" idempotent
step "systemd-analyze verify of our units" verify_units
step "installed files" installed_state

echo
if [ "$failed" -ne 0 ]; then
    printf 'test: failed: %s\n' "${failures[@]}"
    echo "test: logs in $work (set RETROFARM_TEST_WORKDIR to keep them)"
fi
echo "ansible: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
