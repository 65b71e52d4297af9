#!/usr/bin/env python3
"""Every alert rule of monitoring/alerts.yml has a runbook and a unit test:

- a `runbook_url` annotation pointing into this repository on GitHub
  (https://github.com/retrofarm/retrofarm/blob/main/<path>[#anchor]);
- <path> exists, its first heading names the alert, it has the three sections every runbook
  has ("What it means", "How to confirm", "What to do"), and an #anchor, if any, is one of its
  headings (GitHub's heading ids);
- docs/runbooks/README.md links every runbook, and every page there belongs to an alert;
- a promtool test in monitoring/tests/*_test.yml expects the alert to fire at least once.

    python3 monitoring/check_runbooks.py

Before checking the real files it makes sure broken ones are rejected (a rule without
runbook_url, a missing page, a page without a section, an alert without a firing test).
Exit status 0 when everything passes. Needs PyYAML.
"""

import copy
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ALERTS = HERE / "alerts.yml"
TESTS = HERE / "tests"
RUNBOOKS = REPO / "docs" / "runbooks"
URL_BASE = "https://github.com/retrofarm/retrofarm/blob/main/"
SECTIONS = ("What it means", "How to confirm", "What to do")


def github_anchor(heading):
    """GitHub's id for a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def headings(text):
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6})\s+(.*)$", text, re.M)]


def rules(doc):
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if "alert" in rule:
                yield rule


def firing_tests(test_docs):
    """Alert names some test expects to fire."""
    names = set()
    for doc in test_docs:
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []) or []:
                if case.get("exp_alerts"):
                    names.add(case["alertname"])
    return names


def problems(alerts_doc, test_docs, read_page, runbook_files, readme_text):
    """read_page(path relative to the repository) -> text or None."""
    errs = []
    used = set()
    fire = firing_tests(test_docs)
    for rule in rules(alerts_doc):
        name = rule["alert"]
        url = (rule.get("annotations") or {}).get("runbook_url")
        if name not in fire:
            errs.append(f"{name}: no test in monitoring/tests/ expects it to fire")
        if not url:
            errs.append(f"{name}: no runbook_url annotation")
            continue
        if not url.startswith(URL_BASE):
            errs.append(f"{name}: runbook_url {url} is not under {URL_BASE}")
            continue
        path, _, anchor = url[len(URL_BASE):].partition("#")
        text = read_page(path)
        if text is None:
            errs.append(f"{name}: runbook {path} does not exist")
            continue
        used.add(path)
        heads = headings(text)
        if not heads or name not in heads[0]:
            errs.append(f"{name}: the first heading of {path} does not name the alert")
        for section in SECTIONS:
            if section not in heads:
                errs.append(f"{name}: {path} has no '## {section}' section")
        if anchor and anchor not in {github_anchor(h) for h in heads}:
            errs.append(f"{name}: {path} has no heading with the id #{anchor}")
    for f in runbook_files:
        if f not in used:
            errs.append(f"{f}: no alert links this runbook")
        if Path(f).name not in readme_text:
            errs.append(f"docs/runbooks/README.md does not link {Path(f).name}")
    return errs


def self_test(alerts_doc, test_docs, read_page, runbook_files, readme_text):
    """The checker must reject broken inputs; returns problems with the checker itself."""
    out = []
    first = next(rules(alerts_doc))
    cases = {}
    a = copy.deepcopy(alerts_doc)
    del next(rules(a))["annotations"]["runbook_url"]
    cases["a rule without runbook_url"] = (a, test_docs, read_page)
    a = copy.deepcopy(alerts_doc)
    next(rules(a))["annotations"]["runbook_url"] = URL_BASE + "docs/runbooks/no-such-page.md"
    cases["a runbook_url to a missing page"] = (a, test_docs, read_page)
    a = copy.deepcopy(alerts_doc)
    next(rules(a))["annotations"]["runbook_url"] += "#no-such-heading"
    cases["an anchor to a missing heading"] = (a, test_docs, read_page)
    target = first["annotations"]["runbook_url"][len(URL_BASE):].partition("#")[0]

    def without_section(path):
        text = read_page(path)
        return text.replace("## What to do", "## Notes") if path == target and text else text

    cases["a page without its 'What to do' section"] = (alerts_doc, test_docs, without_section)
    t = copy.deepcopy(test_docs)
    for doc in t:
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []) or []:
                if case["alertname"] == first["alert"]:
                    case["exp_alerts"] = []
    cases["an alert no test fires"] = (alerts_doc, t, read_page)
    for what, (a, t, rp) in cases.items():
        if not problems(a, t, rp, runbook_files, readme_text):
            out.append(f"self-test: the check accepted {what}")
    return out


def main():
    alerts_doc = yaml.safe_load(ALERTS.read_text())
    test_docs = [yaml.safe_load(p.read_text()) for p in sorted(TESTS.glob("*_test.yml"))]

    def read_page(path):
        p = (REPO / path).resolve()
        if REPO not in p.parents or not p.is_file():
            return None
        return p.read_text()

    runbook_files = sorted(str(p.relative_to(REPO)) for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
    readme = RUNBOOKS / "README.md"
    readme_text = readme.read_text() if readme.is_file() else ""
    errs = problems(alerts_doc, test_docs, read_page, runbook_files, readme_text)
    errs += self_test(alerts_doc, test_docs, read_page, runbook_files, readme_text)
    for e in errs:
        print(f"FAIL {e}")
    n = sum(1 for _ in rules(alerts_doc))
    print(f"runbooks: {n} alerts, {len(runbook_files)} runbooks, {len(errs)} problems")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
