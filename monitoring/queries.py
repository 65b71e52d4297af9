#!/usr/bin/env python3
"""Every PromQL query retrofarm's monitoring runs: the dashboards' panel targets and variable
queries (with Grafana's template variables substituted) and the alert rule expressions.

    queries.py list                         print every query, one block each
    queries.py run URL [options]            run each one against a live Prometheus, report no-data
    queries.py rules-file OUT.yml           write them as recording rules (for `promtool check rules`)
    queries.py promtool-test SERIES OUT.yml write a `promtool test rules` file that asserts every
                                            query returns data from the series in SERIES

`run` options:
    --ignore REGEX     a metric name or query source matching REGEX may be missing (repeatable),
                       e.g. --ignore '^DCGM_' where no NVIDIA DCGM exporter runs
    --retry-for SEC    keep retrying failing queries this long (the first scrapes, rate() windows)
    --var NAME=VALUE   value for a dashboard variable (default ".*")
    --json FILE        also write the report as JSON

For `run`, a panel or variable query fails when it returns an empty result; an alert expression
is expected to be empty on a healthy farm, so it fails only when Prometheus rejects it or when a
metric it reads has no series at all. Exit status: 0 when nothing failed. Only the standard
library and PyYAML are needed.
"""

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "dashboards"
ALERTS = HERE / "alerts.yml"

# Grafana's built-in variables and the values a query gets here. $__rate_interval is at least
# four scrape intervals in Grafana; with a 15 s scrape interval that is 1m.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
VAR_RE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|(\w+))")
LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*$", re.S)


class Query:
    def __init__(self, source, kind, expr):
        self.source = source  # e.g. "retrofarm-worker.json: Encode duration [B]"
        self.kind = kind  # "panel", "variable" or "alert"
        self.expr = expr

    def metrics(self):
        return metric_names(self.expr)


def substitute(expr, values):
    def repl(m):
        name = next(g for g in m.groups() if g)
        if name in BUILTINS:
            return BUILTINS[name]
        return values.get(name, ".*")

    return VAR_RE.sub(repl, expr)


# --- PromQL metric names, without a full parser ------------------------------------------------

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
    "unless", "inf", "nan", "atan2", "start", "end",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio",
}


def metric_names(expr):
    """Metric names an expression selects: identifiers not followed by "(" that are not keywords,
    label names or durations."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"#[^\n]*", "", s)  # comments
    names = set(re.findall(r'__name__\s*=\s*"([^"]+)"', expr))
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        after = s[m.end():].lstrip()
        if after.startswith("(") or word.lower() in KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return sorted(names)


# --- Collecting the queries --------------------------------------------------------------------


def dashboard_queries(values):
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            q = var.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q or ""
            m = LABEL_VALUES_RE.match(q)
            if m:  # label_values(selector, label) is Grafana's, not PromQL: ask for the series
                q = f"count by ({m.group(2)}) ({m.group(1)})"
            out.append(Query(f"{path.name}: variable ${var['name']}", "variable", substitute(q, values)))
        panels = []
        for p in board.get("panels", []):
            panels.append(p)
            panels.extend(p.get("panels", []) if p.get("type") == "row" else [])
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    src = f"{path.name}: {p.get('title')} [{t.get('refId')}]"
                    out.append(Query(src, "panel", substitute(t["expr"], values)))
    return out


def alert_queries():
    out = []
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            out.append(Query(f"alerts.yml: {group['name']}/{name}", "alert", rule["expr"].strip()))
    return out


def all_queries(values=None):
    return dashboard_queries(values or {}) + alert_queries()


# --- Offline outputs for promtool ---------------------------------------------------------------


def rules_file(queries):
    rules = [
        {"record": f"retrofarm_check:q{i}", "expr": q.expr, "labels": {"source": q.source}}
        for i, q in enumerate(queries)
    ]
    return {"groups": [{"name": "retrofarm-dashboard-queries", "rules": rules}]}


def promtool_test(queries, series_doc, rules_path):
    """A promtool test that evaluates every query over the fixture series and expects data."""
    eval_time = series_doc.get("eval_time", "10m")
    tests = []
    for q in queries:
        if q.kind == "alert":
            # Alerts are empty on a healthy farm; check that every metric they read exists.
            exprs = [(f"{q.source} reads {m}", f'count({{__name__="{m}"}}) > bool 0') for m in q.metrics()]
        else:
            exprs = [(q.source, f"count({q.expr}) > bool 0")]
        tests.extend({"expr": e, "eval_time": eval_time, "exp_samples": [{"labels": "{}", "value": 1}], "_src": s} for s, e in exprs)
    # promtool prints the failing expression, not our source name: keep the source as a comment
    # via the expression itself is not possible, so order is kept and listed by `list`.
    for t in tests:
        t.pop("_src")
    return {
        "rule_files": [str(rules_path)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": series_doc.get("interval", "1m"),
                "input_series": series_doc["input_series"],
                "promql_expr_test": tests,
            }
        ],
    }


# --- Live run ---------------------------------------------------------------------------------


def prom_query(base, expr, timeout=10.0):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:  # 400/422: bad query, with a JSON error body
        try:
            body = json.loads(e.read())
        except ValueError:
            return "error", f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return "error", str(e)
    if body.get("status") != "success":
        return "error", f"{body.get('errorType')}: {body.get('error')}"
    return "ok", body["data"]["result"]


def check_once(base, q, ignore):
    """-> (state, detail) with state in pass, fail, skip."""
    status, result = prom_query(base, q.expr)
    if status == "error":
        return "fail", f"query rejected: {result}"
    missing = []
    for m in q.metrics():
        s, r = prom_query(base, f'count({{__name__="{m}"}})')
        if s == "error" or not r:
            missing.append(m)
    ignored = [m for m in missing if any(rx.search(m) for rx in ignore)]
    real = [m for m in missing if m not in ignored]
    if q.kind == "alert":
        if real:
            return "fail", "no series for " + ", ".join(real)
        return ("skip", "ignored: " + ", ".join(ignored)) if ignored else ("pass", f"{len(result)} alerting")
    if result:
        return "pass", f"{len(result)} series"
    if any(rx.search(q.source) for rx in ignore) or (missing and not real):
        return "skip", "no data (ignored" + (": " + ", ".join(ignored) if ignored else "") + ")"
    detail = "no data"
    if real:
        detail += "; no series at all for " + ", ".join(real)
    return "fail", detail


def run(base, queries, ignore, retry_for):
    deadline = time.monotonic() + retry_for
    results = {}
    pending = list(queries)
    while True:
        still = []
        for q in pending:
            state, detail = check_once(base, q, ignore)
            results[q.source] = (q, state, detail)
            if state == "fail":
                still.append(q)
        pending = still
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    return [results[q.source] for q in queries]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    r = sub.add_parser("run")
    r.add_argument("url")
    r.add_argument("--ignore", action="append", default=[])
    r.add_argument("--retry-for", type=float, default=0.0)
    r.add_argument("--var", action="append", default=[])
    r.add_argument("--json")
    rf = sub.add_parser("rules-file")
    rf.add_argument("out")
    pt = sub.add_parser("promtool-test")
    pt.add_argument("series")
    pt.add_argument("out")
    args = ap.parse_args(argv)

    values = {}
    for kv in getattr(args, "var", []):
        k, _, v = kv.partition("=")
        values[k] = v
    queries = all_queries(values)

    if args.cmd == "list":
        for q in queries:
            print(f"# {q.kind}: {q.source}\n#   metrics: {', '.join(q.metrics())}\n{q.expr}\n")
        print(f"{len(queries)} queries")
        return 0
    if args.cmd == "rules-file":
        Path(args.out).write_text(yaml.safe_dump(rules_file(queries), sort_keys=False, width=1000))
        return 0
    if args.cmd == "promtool-test":
        series = yaml.safe_load(Path(args.series).read_text())
        out = Path(args.out)
        rules_path = out.with_name(out.stem + "-rules.yml")
        rules_path.write_text(yaml.safe_dump(rules_file(queries), sort_keys=False, width=1000))
        out.write_text(yaml.safe_dump(promtool_test(queries, series, rules_path.name), sort_keys=False, width=1000))
        return 0

    ignore = [re.compile(x) for x in args.ignore]
    report = run(args.url, queries, ignore, args.retry_for)
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for q, state, detail in report:
        counts[state] += 1
        print(f"{state.upper():4} {q.source}: {detail}")
        if state == "fail":
            print("     " + q.expr.replace("\n", "\n     "))
    if args.json:
        Path(args.json).write_text(
            json.dumps([{"source": q.source, "kind": q.kind, "expr": q.expr, "state": s, "detail": d} for q, s, d in report], indent=2)
        )
    print(f"queries: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
