#!/usr/bin/env python3
"""Check that the deploy/ monitoring files only name metrics lipcast exports (deploy/metrics.txt).

Parses every PromQL expression with promql-parser (a real PromQL grammar) in:
  deploy/grafana/dashboards/*.json          panel targets and templating queries
  deploy/prometheus/alerts.yml              rule expressions
  deploy/k8s/prometheusrule.yaml            rule expressions
  deploy/k8s/prometheus-adapter/values.yaml seriesQuery / metricsQuery (adapter templates filled in)
and reads the metric names of deploy/k8s/hpa.yaml. Fails when an expression does not parse, names a metric
that is not in deploy/metrics.txt (histograms may add _bucket/_sum/_count; `up` is Prometheus' own per-target
series), when metrics.txt lists a name nothing uses, or when the dashboard JSON is malformed.

usage: check_deploy_metrics.py [repo root]   (exit 0 when everything holds)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import promql_parser
import yaml

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SYNTHETIC = {"up"}  # added by Prometheus for every scrape target, not exported by lipcast
GRAFANA_INTERVALS = re.compile(r"\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?")

failures: list[str] = []
used: dict[str, set[str]] = {}  # metric -> where


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"FAIL {msg}")


def selectors(node, out: set[str]) -> None:
    """Collect the metric names of every vector selector under a promql_parser AST node."""
    if node is None:
        return
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            out.add(node.name)
        for m in node.matchers.matchers:
            if m.name == "__name__":
                out.add(m.value)
        return
    if isinstance(node, promql_parser.MatrixSelector):
        selectors(node.vector_selector, out)
        return
    for attr in ("expr", "lhs", "rhs", "param"):
        selectors(getattr(node, attr, None), out)
    for arg in getattr(node, "args", None) or []:
        selectors(arg, out)


def check_expr(expr: str, where: str, known: set[str]) -> None:
    text = GRAFANA_INTERVALS.sub("5m", expr)
    try:
        ast = promql_parser.parse(text)
    except Exception as e:  # the parser raises its own error types
        fail(f"{where}: does not parse as PromQL: {expr!r}: {e}")
        return
    names: set[str] = set()
    selectors(ast, names)
    if not names:
        fail(f"{where}: names no metric: {expr!r}")
    for name in names:
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in known:
                base = name[: -len(suffix)]
        if base in SYNTHETIC:
            continue
        if base not in known:
            fail(f"{where}: metric {name} is not in deploy/metrics.txt")
            continue
        used.setdefault(base, set()).add(where)


def load_metrics(path: Path) -> set[str]:
    names: list[str] = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not re.fullmatch(r"lipcast_[a-z0-9_]+", line):
            fail(f"{path}:{i}: not a metric base name: {line!r}")
        elif line.endswith(HISTOGRAM_SUFFIXES):
            fail(f"{path}:{i}: {line} carries a histogram suffix; list the base name")
        names.append(line)
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        fail(f"{path}: duplicate names {sorted(dup)}")
    return set(names)


def status(before: int) -> str:
    return "ok  " if len(failures) == before else "BAD "


def check_dashboard(path: Path, known: set[str]) -> None:
    before = len(failures)
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        fail(f"{path}: not JSON: {e}")
        return
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dash:
            fail(f"{path}: no {key!r}")
    panels, stack = [], list(dash.get("panels", []))
    while stack:
        p = stack.pop(0)
        panels.append(p)
        stack.extend(p.get("panels", []))  # panels inside collapsed rows
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        fail(f"{path}: duplicate panel ids")
    variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    n_expr = 0
    for p in panels:
        where = f"{path.name} panel {p.get('id')} {p.get('title')!r}"
        if "gridPos" not in p:
            fail(f"{where}: no gridPos")
        if p.get("type") in ("row", "text"):
            continue
        targets = p.get("targets") or []
        if not targets:
            fail(f"{where}: no query")
        for t in targets:
            if not t.get("expr"):
                fail(f"{where}: target {t.get('refId')} has no expr")
                continue
            n_expr += 1
            check_expr(t["expr"], where, known)
        for ref in [p.get("datasource")] + [t.get("datasource") for t in targets]:
            uid = (ref or {}).get("uid", "")
            if uid.startswith("$") and uid.strip("${}") not in variables:
                fail(f"{where}: data source variable {uid} is not defined")
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        where = f"{path.name} variable {v.get('name')}"
        m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", q)
        m2 = re.fullmatch(r"\s*query_result\((.*)\)\s*", q)
        if m:
            check_expr(m.group(1), where, known)
        elif m2:
            check_expr(m2.group(1), where, known)
        else:
            fail(f"{where}: unsupported variable query {q!r}")
        n_expr += 1
    print(f"{status(before)} {path}: {len(panels)} panels, {n_expr} queries checked")


def check_rules(path: Path, groups, known: set[str]) -> None:
    before, n = len(failures), 0
    for g in groups or []:
        for r in g.get("rules", []):
            name = r.get("alert") or r.get("record")
            if not name or "expr" not in r:
                fail(f"{path}: rule without name or expr in group {g.get('name')}")
                continue
            check_expr(str(r["expr"]), f"{path.name} rule {name}", known)
            n += 1
    print(f"{status(before)} {path}: {n} rules checked")


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    deploy = root / "deploy"
    known = load_metrics(deploy / "metrics.txt")
    print(f"ok   deploy/metrics.txt: {len(known)} metric names")

    dashboards = sorted((deploy / "grafana" / "dashboards").glob("*.json"))
    if not dashboards:
        fail("no dashboard in deploy/grafana/dashboards")
    for d in dashboards:
        check_dashboard(d, known)

    alerts = deploy / "prometheus" / "alerts.yml"
    check_rules(alerts, yaml.safe_load(alerts.read_text()).get("groups"), known)
    rule = deploy / "k8s" / "prometheusrule.yaml"
    check_rules(rule, yaml.safe_load(rule.read_text())["spec"].get("groups"), known)

    hpa_path = deploy / "k8s" / "hpa.yaml"
    hpa = yaml.safe_load(hpa_path.read_text())
    for m in hpa["spec"].get("metrics", []):
        spec = m.get(m["type"][0].lower() + m["type"][1:], {})
        name = (spec.get("metric") or {}).get("name")
        if m["type"] == "Resource":
            continue
        if name not in known:
            fail(f"{hpa_path}: HPA metric {name} is not in deploy/metrics.txt")
        else:
            used.setdefault(name, set()).add("hpa")
            print(f"ok   {hpa_path}: HPA scales on {name}")

    adapter_path = deploy / "k8s" / "prometheus-adapter" / "values.yaml"
    adapter = yaml.safe_load(adapter_path.read_text())
    before = len(failures)
    for rule_ in adapter.get("rules", {}).get("custom", []):
        series = rule_["seriesQuery"]
        check_expr(series, f"{adapter_path.name} seriesQuery", known)
        series_name = re.match(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)", series).group(1)
        mq = (rule_.get("metricsQuery", "").replace("<<.Series>>", series_name)
              .replace("<<.LabelMatchers>>", 'namespace="default",pod=~"lipcast-.*"')
              .replace("<<.GroupBy>>", "pod"))
        check_expr(mq, f"{adapter_path.name} metricsQuery", known)
        exposed = (rule_.get("name") or {}).get("as", series_name)
        if exposed not in known:
            fail(f"{adapter_path}: exposes {exposed}, which is not in deploy/metrics.txt")
    print(f"{status(before)} {adapter_path}: adapter rules checked")

    unused = sorted(known - set(used))
    if unused:
        fail(f"deploy/metrics.txt lists metrics nothing uses: {unused}")
    if failures:
        print(f"check_deploy_metrics: {len(failures)} problem(s)")
        return 1
    print(f"check_deploy_metrics: all {len(known)} metrics in deploy/metrics.txt are used, and nothing else is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
