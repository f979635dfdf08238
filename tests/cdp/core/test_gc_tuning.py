"""The web process tunes its garbage collector once the app is loaded (cdp.core.gc_tuning)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROBE = ("import gc, cdp.wsgi; "
         "print(gc.get_threshold()[0], gc.get_freeze_count() > 10000)")


def loaded_wsgi(tmp_path, **env) -> str:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "cdp.settings", "TESSERA_VAR_DIR": str(tmp_path), **env}
    environment.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.parametrize(("setting", "expected"), [(None, "50000 True"), ("20000", "20000 True"),
                                                   ("0", "700 False")])
def test_the_web_process_freezes_start_up_and_collects_less_often(tmp_path, setting, expected):
    env = {} if setting is None else {"TESSERA_GC_GEN0_THRESHOLD": setting}
    assert loaded_wsgi(tmp_path, **env) == expected
