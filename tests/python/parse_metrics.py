"""Parses metrics text from stdin with the Prometheus project's Python client and prints every
sample as one JSON object per line: {"family", "type", "name", "labels", "value"}.

Usage: parse_metrics.py prometheus|openmetrics
The parser raises (exit status 1, the reason on stderr) on anything the format does not allow.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus


def main() -> None:
    parse = {"prometheus": prometheus, "openmetrics": openmetrics}[sys.argv[1]]
    text = sys.stdin.read()
    for family in parse(text):
        for sample in family.samples:
            print(json.dumps({
                "family": family.name,
                "type": family.type,
                "name": sample.name,
                "labels": sample.labels,
                "value": sample.value,
            }))


if __name__ == "__main__":
    main()
