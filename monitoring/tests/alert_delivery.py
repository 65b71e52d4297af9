#!/usr/bin/env python3
"""Alerts reach someone: the monitoring role's Alertmanager configuration, rendered by Ansible
from ansible/roles/monitoring/templates/ with a webhook and an e-mail receiver, run by a real
Alertmanager (Debian's prometheus-alertmanager) with the role's command line, fed by a real
Prometheus evaluating monitoring/alerts.yml, delivers:

- RetrofarmCoordinatorDown (critical; a coordinator target that refuses connections) to the
  default receiver's webhook and mailbox, and to a "pager" route for critical alerts;
- RetrofarmDcgmExporterDown (warning) to the default receiver only, not to the pager;
- each with its summary and runbook_url.

The two rules' `for` is cut to 0 s in a copy of alerts.yml so the test takes seconds. It also
renders the role's default configuration (no receiver set) and checks that it is valid and
sends everything to the "null" receiver with a warning in the file.

    python3 monitoring/tests/alert_delivery.py

Needs prometheus, prometheus-alertmanager (amtool), ansible-playbook; loopback only.
"""

import http.server
import json
import os
import shlex
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ROLE = REPO / "ansible" / "roles" / "monitoring"
RUNBOOKS = "https://github.com/retrofarm/retrofarm/blob/main/docs/runbooks/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.lock = threading.Lock()
        self.webhooks = []  # (path, body)
        self.mails = []  # (recipients, data)

    def snapshot(self):
        with self.lock:
            return list(self.webhooks), list(self.mails)


def webhook_server(inbox):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with inbox.lock:
                inbox.webhooks.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def smtp_server(inbox):
    """Just enough SMTP (RFC 5321) to take Alertmanager's mail: no TLS, no AUTH."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            def say(line):
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            say("220 sink.test.invalid ESMTP")
            rcpts, data = [], None
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                cmd = line.decode(errors="replace").strip()
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    say("250-sink.test.invalid")
                    say("250 8BITMIME")
                elif verb == "HELO":
                    say("250 sink.test.invalid")
                elif verb == "MAIL":
                    rcpts = []
                    say("250 OK")
                elif verb == "RCPT":
                    rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
                    say("250 OK")
                elif verb == "DATA":
                    say("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while True:
                        l = self.rfile.readline()
                        if not l or l in (b".\r\n", b".\n"):
                            break
                        lines.append(l.decode(errors="replace"))
                    data = "".join(lines)
                    with inbox.lock:
                        inbox.mails.append((rcpts, data))
                    say("250 OK queued")
                elif verb == "QUIT":
                    say("221 bye")
                    return
                elif verb in ("RSET", "NOOP"):
                    say("250 OK")
                else:
                    say("502 not implemented")

    class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def render(tmp, overrides, outputs):
    """Renders the role's templates with its defaults and vars plus `overrides` (extra vars, as
    an inventory would set them) through ansible-playbook on localhost."""
    play = [
        {
            "name": "Render the monitoring role's Alertmanager files",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
            "tasks": [
                {"ansible.builtin.template": {"src": str(ROLE / "templates" / src), "dest": str(dest), "mode": "0600"}}
                for src, dest in outputs.items()
            ],
        }
    ]
    pb = tmp / f"render-{len(list(tmp.glob('render-*')))}.yml"
    pb.write_text(yaml.safe_dump(play, sort_keys=False))
    ov = pb.with_suffix(".vars.json")
    ov.write_text(json.dumps(overrides))
    out = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(pb), "-e", f"@{ov}"],
        capture_output=True,
        text=True,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false"),
    )
    if out.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed:\n{out.stdout}\n{out.stderr}")


def wait_ready(url, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} not ready at {url}")


def tail(path, n=15):
    return "\n".join(path.read_text().splitlines()[-n:]) if path.exists() else "(no log)"


def main():
    for tool in ("prometheus", "prometheus-alertmanager", "amtool", "ansible-playbook"):
        if not shutil.which(tool):
            print(f"alert delivery: {tool} is missing (apt-get install prometheus prometheus-alertmanager ansible)", file=sys.stderr)
            return 1
    inbox = Inbox()
    hooks = webhook_server(inbox)
    smtp = smtp_server(inbox)
    hook_base = f"http://127.0.0.1:{hooks.server_address[1]}"
    am_port, prom_port, dead_port = free_port(), free_port(), free_port()
    failures = []
    procs = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        try:
            # 1. The default: no receiver set.
            render(tmp, {}, {"alertmanager.yml.j2": tmp / "default.yml"})
            default_text = (tmp / "default.yml").read_text()
            check = subprocess.run(["amtool", "check-config", str(tmp / "default.yml")], capture_output=True, text=True)
            if check.returncode != 0:
                failures.append(f"amtool rejects the default configuration:\n{check.stdout}{check.stderr}")
            default = yaml.safe_load(default_text)
            if default["route"]["receiver"] != "null" or "WARNING" not in default_text:
                failures.append("the default configuration does not route to the null receiver with a warning")

            # 2. An operator's configuration: a webhook and an e-mail receiver by default, a pager
            # route for critical alerts, and Alertmanager's command line from the role.
            overrides = {
                "monitoring_alertmanager_listen": f"127.0.0.1:{am_port}",
                "monitoring_alertmanager_receivers": [
                    {"name": "oncall", "webhook_urls": [f"{hook_base}/oncall"], "email_to": ["ops@example.org"]},
                    {"name": "pager", "webhook_urls": [f"{hook_base}/pager"]},
                ],
                "monitoring_alertmanager_receiver": "oncall",
                "monitoring_alertmanager_routes": [{"receiver": "pager", "matchers": ['severity="critical"'], "continue": True}],
                "monitoring_alertmanager_group_wait": "1s",
                "monitoring_alertmanager_group_interval": "1s",
                "monitoring_alertmanager_smtp_smarthost": f"127.0.0.1:{smtp.server_address[1]}",
                "monitoring_alertmanager_smtp_from": "alertmanager@test.invalid",
                "monitoring_alertmanager_smtp_require_tls": False,
            }
            render(
                tmp,
                overrides,
                {"alertmanager.yml.j2": tmp / "alertmanager.yml", "prometheus-alertmanager.default.j2": tmp / "alertmanager.default"},
            )
            check = subprocess.run(["amtool", "check-config", str(tmp / "alertmanager.yml")], capture_output=True, text=True)
            if check.returncode != 0:
                failures.append(f"amtool rejects the operator's configuration:\n{check.stdout}{check.stderr}")
            routes = subprocess.run(
                ["amtool", "config", "routes", "test", f"--config.file={tmp / 'alertmanager.yml'}", "severity=critical"],
                capture_output=True,
                text=True,
            )
            if set(routes.stdout.replace(",", " ").split()) != {"pager", "oncall"}:
                failures.append(f"a critical alert should go to pager and oncall; amtool says {routes.stdout.strip()!r}")
            args_line = next(l for l in (tmp / "alertmanager.default").read_text().splitlines() if l.startswith("ARGS="))
            # The file holds ARGS="..."; systemd splits the unquoted $ARGS on whitespace.
            args = shlex.split(args_line[len("ARGS=") :])[0].split()
            if "--cluster.listen-address=" not in args:
                failures.append("the role's Alertmanager command line leaves the cluster port open")
            am = subprocess.Popen(
                ["prometheus-alertmanager", *args, f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'am'}"],
                stdout=subprocess.DEVNULL,
                stderr=open(tmp / "alertmanager.log", "w"),
            )
            procs.append(am)
            try:
                wait_ready(f"http://127.0.0.1:{am_port}/-/ready", am, "Alertmanager")
            except RuntimeError:
                print(tail(tmp / "alertmanager.log"))
                raise

            # 3. Prometheus with retrofarm's rules (two of them without `for`) and two dead targets.
            rules = yaml.safe_load((REPO / "monitoring" / "alerts.yml").read_text())
            for group in rules["groups"]:
                for rule in group["rules"]:
                    if rule.get("alert") in ("RetrofarmCoordinatorDown", "RetrofarmDcgmExporterDown"):
                        rule["for"] = "0s"
            (tmp / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
            dead = f"127.0.0.1:{dead_port}"
            prom_cfg = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp / "rules.yml")],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "retrofarm-coordinator", "static_configs": [{"targets": [dead], "labels": {"instance": "coord-1"}}]},
                    {"job_name": "dcgm", "static_configs": [{"targets": [dead], "labels": {"instance": "gpu-eu-1", "zone": "eu"}}]},
                ],
            }
            (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg))
            prom = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(tmp / "prometheus.log", "w"),
            )
            procs.append(prom)
            wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", prom, "Prometheus")

            # 4. Wait for the notifications.
            def got(path, name):
                return [b for p, b in inbox.snapshot()[0] if p == path and any(a["labels"]["alertname"] == name for a in b["alerts"])]

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                hooks_now, mails = inbox.snapshot()
                if (
                    got("/oncall", "RetrofarmCoordinatorDown")
                    and got("/pager", "RetrofarmCoordinatorDown")
                    and got("/oncall", "RetrofarmDcgmExporterDown")
                    and any("RetrofarmCoordinatorDown" in d for _, d in mails)
                    and any("RetrofarmDcgmExporterDown" in d for _, d in mails)
                ):
                    break
                time.sleep(0.5)
            time.sleep(3)  # a wrongly routed warning would reach the pager by now
            hooks_now, mails = inbox.snapshot()
            for path, name in (
                ("/oncall", "RetrofarmCoordinatorDown"),
                ("/pager", "RetrofarmCoordinatorDown"),
                ("/oncall", "RetrofarmDcgmExporterDown"),
            ):
                bodies = got(path, name)
                if not bodies:
                    failures.append(f"no webhook POST to {path} for {name}")
                    continue
                alert = next(a for b in bodies for a in b["alerts"] if a["labels"]["alertname"] == name)
                ann = alert.get("annotations", {})
                if not ann.get("runbook_url", "").startswith(RUNBOOKS) or not ann.get("summary"):
                    failures.append(f"{name} reached {path} without its summary and runbook_url: {ann}")
            if got("/pager", "RetrofarmDcgmExporterDown"):
                failures.append("a warning (RetrofarmDcgmExporterDown) reached the critical-only pager route")
            for name in ("RetrofarmCoordinatorDown", "RetrofarmDcgmExporterDown"):
                mail = [(r, d) for r, d in mails if name in d]
                if not mail:
                    failures.append(f"no e-mail for {name}")
                elif "ops@example.org" not in mail[0][0]:
                    failures.append(f"the e-mail for {name} went to {mail[0][0]}, not ops@example.org")
            if failures:
                for log in ("alertmanager.log", "prometheus.log"):
                    print(f"--- {log} (last lines)\n{tail(tmp / log)}")
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
            hooks.shutdown()
            smtp.shutdown()
    for f in failures:
        print(f"FAIL {f}")
    print(
        "alert delivery: "
        + ("ok: webhook, e-mail and a critical-only route delivered retrofarm's alerts with their runbooks" if not failures else f"{len(failures)} failed")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
