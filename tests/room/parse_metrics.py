"""Parse a /metrics exposition (OpenMetrics text) with prometheus_client's own parser; print JSON.

usage: parse_metrics.py < metrics.txt
  -> {"families": {"<name>": {"type": ..., "samples": [{"name": ..., "labels": {...}, "value": ...}]}}}
A parse error exits non-zero: the exposition is not valid OpenMetrics.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {
        "type": family.type,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    }
print(json.dumps({"families": out}))
