#!/usr/bin/env bash
# Offline checks of retrofarm's monitoring: alert rules, their unit tests and runbooks, the Grafana dashboards
# (Grafana's JSON schema plus this project's rules) and every dashboard query (PromQL syntax, and
# data from a synthetic scrape shaped like the real exporters, evaluated by promtool and by a
# real Prometheus on loopback through queries.py), and alert delivery (a real Prometheus and
# Alertmanager, configured by the monitoring role's templates, notifying a webhook and an SMTP
# sink on loopback). No Grafana or retrofarm process is needed. Installs promtool (Debian's
# `prometheus`), prometheus-alertmanager, ansible and python3-jsonschema when missing.
#
#   monitoring/check.sh
#
# Exit status 0 when every check passed. The live check (a real Prometheus scraping running
# processes) is `monitoring/queries.py run URL`.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
apt_opts=(-o DPkg::Lock::Timeout=900)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
fi

apt_install() {
    echo "check: installing $* (apt)"
    "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update -qq &&
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v promtool >/dev/null 2>&1; then
    apt_install prometheus || { echo "check: cannot install promtool" >&2; exit 1; }
fi
# The alert delivery test: a real Alertmanager, its configuration rendered by Ansible.
need=()
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
# Debian's full `ansible` (ansible-core and the collections): ansible/test.sh, which runs later,
# needs its community.general and only installs it when ansible-playbook is missing.
command -v ansible-playbook >/dev/null 2>&1 || need+=(ansible)
if [ "${#need[@]}" -gt 0 ]; then
    apt_install "${need[@]}" || { echo "check: cannot install ${need[*]}" >&2; exit 1; }
fi

# A python3 with jsonschema and PyYAML: the one on PATH, else Debian's.
py=""
for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import jsonschema, yaml' 2>/dev/null; then
        py="$cand"
        break
    fi
done
if [ -z "$py" ]; then
    apt_install python3-jsonschema python3-yaml || { echo "check: cannot install python3-jsonschema" >&2; exit 1; }
    py=/usr/bin/python3
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
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

step "promtool check rules alerts.yml" promtool check rules alerts.yml
step "promtool test rules tests/*_test.yml" promtool test rules tests/*_test.yml
step "every alert: runbook_url to a runbook in docs/runbooks/, a test that fires it" "$py" check_runbooks.py
step "dashboards match dashboards/build.py" "$py" dashboards/build.py --check
step "dashboards against Grafana's schema" "$py" validate_dashboards.py
step "dashboard and alert queries: PromQL syntax" \
    bash -c '"$0" queries.py rules-file "$1/queries-rules.yml" && promtool check rules "$1/queries-rules.yml"' "$py" "$work"
step "dashboard and alert queries: data from tests/series.yml" \
    bash -c '"$0" queries.py promtool-test tests/series.yml "$1/queries_test.yml" && promtool test rules "$1/queries_test.yml"' "$py" "$work"
step "queries.py run against a real Prometheus (loopback, static exporter)" \
    "$py" tests/live_selftest.py
step "alerts reach someone: Prometheus -> Alertmanager (the role's config) -> webhook and e-mail" \
    "$py" tests/alert_delivery.py

echo
if [ "$failed" -ne 0 ]; then
    printf 'check: failed: %s\n' "${failures[@]}"
fi
echo "monitoring: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
