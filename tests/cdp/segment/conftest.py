from __future__ import annotations

import base64

import pytest


@pytest.fixture
def segment_source(db):
    """A first-party source and its write key (source_factory does not return the key)."""
    from cdp.services.sources import source_create

    source, write_key = source_create(key="web", name="Web", kind="first_party", trust=50)
    source.write_key = write_key
    return source


@pytest.fixture
def basic_auth():
    def header(write_key: str) -> str:
        return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()

    return header
