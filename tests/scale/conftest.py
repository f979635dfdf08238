"""The scale tests: private PostgreSQL clusters (a primary and a streaming standby)."""

from __future__ import annotations

import sys
from pathlib import Path

# replication.py builds on the fault suite's harness (private services, the product).
sys.path.insert(0, str(Path(__file__).resolve().parent))
