"""The whole project's schema generates with no warning and validates (OpenAPI 3), as the
command an operator or CI would run does it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_spectacular_validates_the_schema_and_fails_on_no_warning(tmp_path):
    target = tmp_path / "schema.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(target)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr[-3000:]
    schema = yaml.safe_load(target.read_text())
    assert schema["openapi"].startswith("3.")
    # Every operation answers problem+json or Segment's shape for each error it documents.
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response.get("content"), (method, path, status)
