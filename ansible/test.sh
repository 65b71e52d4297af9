#!/usr/bin/env bash
# Tests of the Ansible roles and playbooks:
#   1. ansible-lint --profile production;
#   2. ansible-playbook --syntax-check of every playbook;
#   3. convergence: a throwaway Debian 12 root (debootstrap, minbase + python3 + systemd) gets
#      the worker, coordinator, monitoring (and gpu_host, which must skip it: no GPU) roles through
#      community.general.chroot; a second run must change nothing; every systemd unit we install
#      must pass `systemd-analyze verify --root` without a word; the installed binaries must run
#      and the written configuration files must parse (and be 0640 root:retrofarm);
#   4. gpu_host.yml on the same root taken for a GPU host (gpu_host_force_gpu) without the driver
#      (gpu_host_driver_install=false), with stand-ins for NVIDIA's cuda-keyring and DCGM
#      packages (its repository is not reachable from CI), twice; then Debian's driver packages
#      of both flavours must resolve there (apt-get --simulate).
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
# shellcheck source=../scripts/lib/debroot.sh
. "$repo/scripts/lib/debroot.sh" # $mirror, debroot_workdir, debroot_make
playbooks=(site.yml gpu_host.yml farm_worker.yml coordinator.yml node_exporter.yml monitoring.yml)

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

debroot_workdir ansible
root="$work/root"

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

debian_root() { debroot_make "$root"; }

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
    # The configuration files may hold secrets (the TURN secret, ...): the service group only.
    for f in /etc/retrofarm/worker.toml /etc/retrofarm/coordinator.toml; do
        [ "$(chroot "$root" stat -c '%a %U %G' "$f")" = "640 root retrofarm" ] || { echo "   $f has the wrong mode/owner"; ok=1; }
    done
    chroot "$root" getent passwd retrofarm >/dev/null || { echo "   no retrofarm user"; ok=1; }
    for f in retrofarm-worker retrofarm-coordinator prometheus prometheus-alertmanager prometheus-node-exporter; do
        [ -L "$root/etc/systemd/system/multi-user.target.wants/$f.service" ] || { echo "   $f is not enabled"; ok=1; }
    done
    # The cores were unpacked, the homebrew game linked, Prometheus got targets from the inventory.
    [ -f "$root/opt/retrofarm/cores/usr/lib/x86_64-linux-gnu/libretro/nestopia_libretro.so" ] || { echo "   no nestopia core"; ok=1; }
    [ -f "$root/opt/retrofarm/cores/usr/lib/x86_64-linux-gnu/libretro/mgba_libretro.so" ] || { echo "   no mgba core"; ok=1; }
    [ -L "$root/var/lib/retrofarm/games/Retrofarm Walk.nes" ] || { echo "   the homebrew game is not in the games folder"; ok=1; }
    grep -q 'zone: "eu"' "$root/etc/prometheus/prometheus.yml" || { echo "   no zone label in prometheus.yml"; ok=1; }
    chroot "$root" promtool check config /etc/prometheus/prometheus.yml >/dev/null || { echo "   promtool rejects prometheus.yml"; ok=1; }
    [ -f "$root/var/lib/grafana/dashboards/retrofarm/retrofarm-overview.json" ] || { echo "   dashboards not provisioned"; ok=1; }
    # Monitoring: node_exporter scraped as job "node"; Alertmanager configured (valid, secrets not
    # world-readable, "null" receiver by default), Prometheus sending to it; Prometheus,
    # Alertmanager, node_exporter and Grafana off the public interfaces; Grafana's generated admin
    # password on the controller (0600) and in Grafana's root-only environment file.
    grep -q -- '--web.listen-address=127.0.0.1:9100' "$root/etc/default/prometheus-node-exporter" ||
        { echo "   node_exporter does not listen on retrofarm_address"; ok=1; }
    grep -q 'job_name: node' "$root/etc/prometheus/prometheus.yml" && grep -q '"127.0.0.1:9100"' "$root/etc/prometheus/prometheus.yml" ||
        { echo "   prometheus.yml does not scrape node_exporter"; ok=1; }
    grep -A4 '^alerting:' "$root/etc/prometheus/prometheus.yml" | grep -q '"127.0.0.1:9093"' ||
        { echo "   Prometheus does not send alerts to Alertmanager"; ok=1; }
    grep -q -- '--web.listen-address=127.0.0.1:9090' "$root/etc/default/prometheus" || { echo "   Prometheus is not on loopback"; ok=1; }
    grep -q -- '--web.listen-address=127.0.0.1:9093 --cluster.listen-address= ' "$root/etc/default/prometheus-alertmanager" ||
        { echo "   Alertmanager is not on loopback or has its cluster port open"; ok=1; }
    chroot "$root" amtool check-config /etc/prometheus/alertmanager.yml >/dev/null || { echo "   amtool rejects alertmanager.yml"; ok=1; }
    [ "$(chroot "$root" stat -c '%a %U %G' /etc/prometheus/alertmanager.yml)" = "640 root prometheus" ] ||
        { echo "   alertmanager.yml has the wrong mode/owner"; ok=1; }
    grep -q '^  receiver: "null"' "$root/etc/prometheus/alertmanager.yml" || { echo "   no null receiver by default"; ok=1; }
    grep -q 'runbook_url: https://github.com/retrofarm/retrofarm/blob/main/docs/runbooks/' "$root/etc/prometheus/rules/retrofarm.yml" ||
        { echo "   the installed rules have no runbook links"; ok=1; }
    [ "$(stat -c '%a' "$work/pki/grafana-admin-password" 2>/dev/null)" = "600" ] ||
        { echo "   no generated Grafana password (0600) on the controller"; ok=1; }
    [ "$(chroot "$root" stat -c '%a %U %G' /etc/grafana/retrofarm.env)" = "600 root root" ] ||
        { echo "   Grafana's environment file has the wrong mode/owner"; ok=1; }
    grep -qxF "GF_SECURITY_ADMIN_PASSWORD=\"$(cat "$work/pki/grafana-admin-password" 2>/dev/null)\"" "$root/etc/grafana/retrofarm.env" ||
        { echo "   Grafana's admin password is not the generated one"; ok=1; }
    grep -qx 'GF_SERVER_HTTP_ADDR=127.0.0.1' "$root/etc/grafana/retrofarm.env" || { echo "   Grafana is not on loopback"; ok=1; }
    return $ok
}

# --- gpu_host on a host taken for a GPU host (no GPU, no driver, no NVIDIA repository) ----------
# gpu_host.yml again, with gpu_host_force_gpu (a GPU host without looking) and
# gpu_host_driver_install=false. NVIDIA's repository is not reachable from CI: cuda-keyring is a
# stand-in made here that points apt at a local repository of stand-ins for
# datacenter-gpu-manager-4-core and datacenter-gpu-manager-exporter (laid out like NVIDIA's
# exporter package: /usr/bin/dcgm-exporter, /etc/dcgm-exporter, nvidia-dcgm-exporter.service).
# The rest is real: Debian's non-free components for the host's release and the pins, the
# nouveau blacklist, the persistence-mode drop-in, cuda-keyring installed, DCGM and the exporter
# installed from the repository it adds, the exporter's counters, drop-in and enablement. Twice:
# the second run must change nothing. Then Debian's driver packages (both flavours of the
# role's defaults) must resolve in that root, pins included (apt-get --simulate).
fake_cuda_repo() {
    local build="$work/fake-cuda" repo_dir="$root/opt/retrofarm-test-cuda" name dir pkg ver arch dep
    rm -rf "$build" "$repo_dir"
    mkdir -p "$repo_dir" "$build/keyring/etc/apt/sources.list.d" "$build/core/usr/share/doc/datacenter-gpu-manager-4-core" \
        "$build/exporter/usr/bin" "$build/exporter/etc/dcgm-exporter" "$build/exporter/usr/lib/systemd/system"
    echo "deb [trusted=yes] file:/opt/retrofarm-test-cuda ./" >"$build/keyring/etc/apt/sources.list.d/cuda-retrofarm-test.list"
    echo "stand-in made by ansible/test.sh" >"$build/core/usr/share/doc/datacenter-gpu-manager-4-core/README"
    printf '#!/bin/sh\nexit 0\n' >"$build/exporter/usr/bin/dcgm-exporter"
    chmod 755 "$build/exporter/usr/bin/dcgm-exporter"
    echo "DCGM_FI_DEV_GPU_UTIL, gauge, GPU utilization (in %)." >"$build/exporter/etc/dcgm-exporter/default-counters.csv"
    printf '%s\n' '[Unit]' 'Description=stand-in for the DCGM exporter unit of NVIDIA'"'"'s package' '' '[Service]' 'User=root' \
        'ExecStart=/usr/bin/dcgm-exporter -f /etc/dcgm-exporter/default-counters.csv' 'Restart=on-abort' '' \
        '[Install]' 'WantedBy=multi-user.target' >"$build/exporter/usr/lib/systemd/system/nvidia-dcgm-exporter.service"
    # folder|package|version|architecture|depends
    for name in "keyring|cuda-keyring|1.1-1|all|" "core|datacenter-gpu-manager-4-core|1:4.0.0-1|amd64|" \
        "exporter|datacenter-gpu-manager-exporter|4.0.0-1|amd64|datacenter-gpu-manager-4-core"; do
        IFS='|' read -r dir pkg ver arch dep <<<"$name"
        mkdir -p "$build/$dir/DEBIAN"
        {
            echo "Package: $pkg"
            echo "Version: $ver"
            echo "Architecture: $arch"
            [ -n "$dep" ] && echo "Depends: $dep"
            echo "Maintainer: retrofarm tests <tests@retrofarm.invalid>"
            echo "Description: stand-in for NVIDIA's $pkg (ansible/test.sh)"
        } >"$build/$dir/DEBIAN/control"
        dpkg-deb --root-owner-group -Zxz -z1 -b "$build/$dir" "$repo_dir/${pkg}.deb" >/dev/null || return 1
    done
    (
        cd "$repo_dir" || exit 1
        for name in datacenter-gpu-manager-4-core.deb datacenter-gpu-manager-exporter.deb; do
            dpkg-deb -f "$name"
            echo "Filename: ./$name"
            echo "Size: $(stat -c %s "$name")"
            echo "SHA256: $(sha256sum "$name" | cut -d' ' -f1)"
            echo
        done
    ) >"$repo_dir/Packages"
    cat >"$work/gpu-vars.yml" <<EOF
gpu_host_force_gpu: true
gpu_host_driver_install: false
gpu_host_debian_mirror: "$mirror"
gpu_host_cuda_keyring_deb: /opt/retrofarm-test-cuda/cuda-keyring.deb
EOF
}

gpu_converge() {
    local log="$work/gpu-run$1.log" rc
    (cd "$here" && ansible-playbook -i "$work/inventory.yml" gpu_host.yml -e "@$work/gpu-vars.yml") >"$log" 2>&1
    rc=$?
    sed -n '/PLAY RECAP/,$p' "$log"
    if [ $rc -ne 0 ]; then
        grep -E -B2 -A12 '^(fatal|failed):|ERROR!' "$log" | head -60
        echo "   ansible-playbook exited $rc (log: $log)"
        return 1
    fi
    recap="$(grep -E '^farm-test +:' "$log")"
    echo "$recap" | grep -q 'failed=0' || return 1
    if [ "$1" = 2 ] && ! echo "$recap" | grep -q ' changed=0 '; then
        echo "   the second run changed something:"
        grep -E -A1 '^changed:' "$log" | head -40
        return 1
    fi
}

gpu_forced() { fake_cuda_repo && gpu_converge 1 && gpu_converge 2; }

# The driver packages of a flavour in the role's defaults (gpu_host_nvidia_packages_by_flavour).
driver_packages() {
    # Debian's python3: ansible's, with its yaml and jinja2.
    /usr/bin/python3 - "$here/roles/gpu_host/defaults/main.yml" "$1" <<'EOF'
import sys, jinja2, yaml
d = yaml.safe_load(open(sys.argv[1]))
for p in d["gpu_host_nvidia_packages_by_flavour"][sys.argv[2]]:
    print(jinja2.Template(p).render(gpu_host_nvidia_branch=d["gpu_host_nvidia_branch"]))
EOF
}

gpu_forced_state() {
    local ok=0 out flavour branch pkgs wrong
    branch="$(/usr/bin/python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["gpu_host_nvidia_branch"])' "$here/roles/gpu_host/defaults/main.yml")"
    grep -qxF "deb $mirror bookworm contrib non-free non-free-firmware" "$root/etc/apt/sources.list.d/retrofarm-nvidia.list" ||
        { echo "   Debian's non-free components for the host's release are not enabled"; ok=1; }
    grep -qF 'Pin: origin "developer.download.nvidia.com"' "$root/etc/apt/preferences.d/retrofarm-nvidia" &&
        grep -qxF "Pin: version $branch.*" "$root/etc/apt/preferences.d/retrofarm-nvidia" ||
        { echo "   the apt pins are missing"; ok=1; }
    grep -qx 'blacklist nouveau' "$root/etc/modprobe.d/retrofarm-blacklist-nouveau.conf" || { echo "   nouveau is not blacklisted"; ok=1; }
    grep -qx 'ExecStart=/usr/bin/nvidia-persistenced --user nvpd --persistence-mode' \
        "$root/etc/systemd/system/nvidia-persistenced.service.d/retrofarm.conf" || { echo "   no persistence-mode drop-in"; ok=1; }
    chroot "$root" dpkg-query -W -f '${Status}\n' cuda-keyring datacenter-gpu-manager-4-core datacenter-gpu-manager-exporter |
        grep -c '^install ok installed$' | grep -qx 3 || { echo "   cuda-keyring, DCGM or its exporter is not installed"; ok=1; }
    [ -f "$root/etc/dcgm-exporter/retrofarm-counters.csv" ] || { echo "   no exporter counters"; ok=1; }
    grep -qx 'ExecStart=/usr/bin/dcgm-exporter --collectors /etc/dcgm-exporter/retrofarm-counters.csv --address 127.0.0.1:9400' \
        "$root/etc/systemd/system/nvidia-dcgm-exporter.service.d/retrofarm.conf" || { echo "   the exporter's drop-in is wrong"; ok=1; }
    [ -L "$root/etc/systemd/system/multi-user.target.wants/nvidia-dcgm-exporter.service" ] || { echo "   the exporter is not enabled"; ok=1; }
    out="$(systemd-analyze verify --root="$root" nvidia-dcgm-exporter.service 2>&1)"
    [ -z "$out" ] || { echo "   nvidia-dcgm-exporter.service with our drop-in:"; echo "$out" | sed 's/^/     /'; ok=1; }
    for flavour in tesla current; do
        mapfile -t pkgs < <(driver_packages "$flavour")
        if ! out="$(chroot "$root" apt-get install --simulate -q --no-install-recommends "${pkgs[@]}" 2>&1)"; then
            echo "   the $flavour driver packages do not resolve:"
            echo "$out" | tail -8 | sed 's/^/     /'
            ok=1
            continue
        fi
        # Each NVIDIA package asked for comes in the branch (the pin).
        wrong="$(echo "$out" | awk -v b="$branch" -v asked=" ${pkgs[*]} " \
            '$1 == "Inst" && index(asked, " " $2 " ") && $2 ~ /nvidia|cuda/ && index($3, "(" b ".") != 1 {print $2, $3}')"
        [ -z "$wrong" ] || { echo "   $flavour: NVIDIA packages outside branch $branch: $wrong"; ok=1; }
        echo "   $flavour: ${#pkgs[@]} driver packages resolve ($(echo "$out" | grep -c '^Inst ') to install)"
    done
    return $ok
}

step "binaries to install ($bin_dir)" binaries
step "Debian 12 root (debootstrap minbase)" debian_root
inventory
step "converge: first run of site.yml" converge 1
step "converge: second run changes nothing" idempotent
step "systemd-analyze verify of our units" verify_units
step "installed files" installed_state
step "gpu_host with a GPU assumed, without the driver: two runs, the second changes nothing" gpu_forced
step "gpu_host's repositories, pins, nouveau, persistence, DCGM exporter; the driver packages resolve" gpu_forced_state

echo
if [ "$failed" -ne 0 ]; then
    printf 'test: failed: %s\n' "${failures[@]}"
    echo "test: logs in $work (set RETROFARM_TEST_WORKDIR to keep them)"
fi
echo "ansible: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
