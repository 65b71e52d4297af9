#!/usr/bin/env python3
"""Checks every dashboard in monitoring/dashboards/ against Grafana's dashboard JSON schema
(monitoring/schema/grafana-dashboard.schema.json, generated from @grafana/schema) and against
the rules this project adds on top. Needs the `jsonschema` package (PyPI, or Debian's
python3-jsonschema).

    python3 monitoring/validate_dashboards.py [FILE.json ...]

Exit status 0 when every dashboard passes; the problems are printed otherwise. Before checking
the real dashboards it makes sure the validator rejects a few broken ones, so a schema that
accepts anything cannot pass silently.
"""

import copy
import json
import re
import sys
from pathlib import Path

import jsonschema

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "schema" / "grafana-dashboard.schema.json"
DASHBOARDS = HERE / "dashboards"

# Variables Grafana defines itself.
BUILTIN_VARS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__all"}
VAR_RE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+)|\[\[(\w+)\]\])")


def schema_errors(validator, board):
    return [
        f"schema: {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(board), key=lambda e: list(map(str, e.absolute_path)))
    ]


def all_panels(board):
    for p in board.get("panels", []):
        yield p
        for inner in p.get("panels", []) if p.get("type") == "row" else []:
            yield inner


def project_errors(board, schema):
    """Rules of this project, beyond what Grafana's schema says."""
    errs = []
    want = schema.get("x-grafana-schema-version")
    if board.get("schemaVersion") != want:
        errs.append(f"schemaVersion is {board.get('schemaVersion')}, the committed schema is for {want}")
    for key in ("uid", "title"):
        if not board.get(key):
            errs.append(f"missing {key}")
    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errs.append('needs a template variable "datasource" of type datasource for prometheus')
    for name, v in variables.items():
        if v.get("type") == "query" and v.get("datasource", {}).get("uid") != "${datasource}":
            errs.append(f'variable {name}: must query the "${{datasource}}" data source')
        if v.get("includeAll") and v.get("allValue") != ".*":
            errs.append(f'variable {name}: allValue must be ".*" so "All" matches series without the label')

    ids, cells = set(), {}
    for p in all_panels(board):
        where = f"panel {p.get('id')} ({p.get('title')!r})"
        if p.get("id") in ids:
            errs.append(f"{where}: duplicate id")
        ids.add(p.get("id"))
        g = p.get("gridPos")
        if not g:
            errs.append(f"{where}: no gridPos")
        else:
            if g["x"] < 0 or g["w"] <= 0 or g["x"] + g["w"] > 24:
                errs.append(f"{where}: gridPos outside the 24 columns")
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    if (x, y) in cells:
                        errs.append(f"{where}: overlaps panel {cells[(x, y)]}")
                        break
                    cells[(x, y)] = p.get("id")
                else:
                    continue
                break
        if p.get("type") == "row":
            continue
        if not p.get("title"):
            errs.append(f"{where}: no title")
        if p.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
            errs.append(f'{where}: datasource must be the "${{datasource}}" variable')
        tgts = p.get("targets") or []
        if not tgts:
            errs.append(f"{where}: no query")
        refs = [t.get("refId") for t in tgts]
        if len(set(refs)) != len(refs) or None in refs:
            errs.append(f"{where}: refIds must be present and unique")
        for t in tgts:
            expr = t.get("expr", "")
            if not expr.strip():
                errs.append(f"{where}: target {t.get('refId')} has no expr")
            if t.get("datasource", p.get("datasource")) != p.get("datasource"):
                errs.append(f"{where}: target {t.get('refId')} uses another data source")
            for m in VAR_RE.finditer(expr):
                name = next(g for g in m.groups() if g)
                if name not in variables and name not in BUILTIN_VARS:
                    errs.append(f"{where}: uses undefined variable ${name}")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if not unit:
            errs.append(f"{where}: no unit")
    return errs


def self_test(validator, schema, good):
    """The validator must reject broken dashboards; returns problems with the validator itself."""
    cases = {}
    b = copy.deepcopy(good)
    b["panels"][1]["gridpos"] = b["panels"][1].pop("gridPos")
    cases["misspelt panel key"] = b
    b = copy.deepcopy(good)
    b["schemaVersion"] = "42"
    cases["schemaVersion as a string"] = b
    b = copy.deepcopy(good)
    del b["panels"][0]["collapsed"]
    cases["row without collapsed"] = b
    b = copy.deepcopy(good)
    b["templating"]["list"][0]["type"] = "dropdown"
    cases["unknown variable type"] = b
    b = copy.deepcopy(good)
    b["panels"][1]["fieldConfig"]["defaults"]["thresholds"]["steps"][0] = {"colour": "green"}
    cases["bad threshold step"] = b
    problems = []
    for name, broken in cases.items():
        if not schema_errors(validator, broken):
            problems.append(f"self-test: the schema accepted a dashboard with a {name}")
    b = copy.deepcopy(good)
    b["panels"][1]["targets"][0]["expr"] += " + $nosuchvar"
    if not project_errors(b, schema):
        problems.append("self-test: the project rules accepted an undefined variable")
    return problems


def main(argv):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    files = [Path(a) for a in argv] or sorted(DASHBOARDS.glob("*.json"))
    if not files:
        print("validate: no dashboards found", file=sys.stderr)
        return 1
    failed = 0
    boards = {}
    for f in files:
        try:
            board = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            print(f"FAIL {f.name}: not JSON: {e}")
            failed += 1
            continue
        boards[f] = board
        errs = schema_errors(validator, board) + project_errors(board, schema)
        uids = [b.get("uid") for b in boards.values()]
        if uids.count(board.get("uid")) > 1:
            errs.append(f"uid {board.get('uid')} used by another dashboard")
        if errs:
            failed += 1
            print(f"FAIL {f.name}")
            for e in errs:
                print(f"  {e}")
        else:
            n = sum(1 for p in all_panels(board) if p.get("type") != "row")
            print(f"ok   {f.name}: {n} panels, schemaVersion {board['schemaVersion']}")
    first = next(iter(boards.values()), None)
    problems = self_test(validator, schema, first) if first else []
    for p in problems:
        print(f"FAIL {p}")
    print(f"dashboards: {len(files) - failed} passed, {failed + len(problems)} failed")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
