#!/usr/bin/env python3
"""Self-test of `queries.py run`: a real Prometheus (Debian's, on loopback) scrapes a static
exporter that serves the series of tests/series.yml, then every dashboard and alert query is run
through the HTTP API as the live farm test will do. Proves the live checker itself works (variable
substitution, no-data detection, the report) before anyone relies on it.

    python3 monitoring/tests/live_selftest.py

Needs the `prometheus` binary; touches nothing but loopback and a temporary folder.
"""

import http.server
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(HERE.parent))
import queries  # noqa: E402


def exposition(series_doc):
    """The first value of every series in Prometheus text format (up is Prometheus's own)."""
    lines = []
    for s in series_doc["input_series"]:
        m = re.match(r"^(\w+)\{(.*)\}$", s["series"].strip())
        name, labels = m.group(1), m.group(2)
        if name == "up":
            continue
        first = str(s["values"]).split()[0]
        value = re.match(r"^-?[0-9.]+(?:[eE][-+]?[0-9]+)?", first).group(0)
        lines.append(f"{name}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    prometheus = shutil.which("prometheus")
    if not prometheus:
        print("live self-test: no prometheus binary (apt-get install prometheus)", file=sys.stderr)
        return 1
    body = exposition(yaml.safe_load((HERE / "series.yml").read_text())).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    exporter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    prom_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "prometheus.yml"
        # honor_labels keeps the job/instance/zone labels the static series carry; the scrape job
        # is named like the workers' so that up{job="retrofarm-worker"} exists too.
        cfg.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "retrofarm-worker",
                            "honor_labels": True,
                            "static_configs": [
                                {"targets": [f"127.0.0.1:{exporter.server_address[1]}"], "labels": {"instance": "gpu-eu-1", "zone": "eu"}}
                            ],
                        }
                    ],
                }
            )
        )
        proc = subprocess.Popen(
            [prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{prom_port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(url + "/-/ready", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.3)
            # A query that must return nothing proves no-data is caught.
            canary = queries.Query("canary", "panel", 'sum(rate(retrofarm_no_such_metric_total{zone=~".*"}[1m]))')
            report = queries.run(url, queries.all_queries(), [], retry_for=30)
            canary_state = queries.run(url, [canary], [], retry_for=0)[0][1]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            exporter.shutdown()
    failed = [(q, s, d) for q, s, d in report if s != "pass"]
    for q, s, d in failed:
        print(f"FAIL {q.source}: {d}\n     {q.expr}")
    if canary_state != "fail":
        print("FAIL the canary query (a metric nobody exports) was not reported as missing")
    n = len(report) + 1
    print(f"live self-test: {n - len(failed) - (canary_state != 'fail')} passed, {len(failed) + (canary_state != 'fail')} failed")
    return 1 if failed or canary_state != "fail" else 0


if __name__ == "__main__":
    sys.exit(main())
