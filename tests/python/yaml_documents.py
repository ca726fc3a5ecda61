"""Reads a YAML stream from stdin with PyYAML and prints its documents as one JSON array.

Usage: yaml_documents.py < manifests.yaml
A stream PyYAML cannot load makes it fail (exit status 1, the reason on stderr).
"""

import json
import sys

import yaml


def main() -> None:
    print(json.dumps(list(yaml.safe_load_all(sys.stdin.read()))))


if __name__ == "__main__":
    main()
