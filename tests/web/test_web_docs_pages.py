"""Issue 17, finding 6: the docs sent operators to pages they were refused (403). Every
console page the README, docs/ and the Segment README name opens for the role they name it for."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import re
from pathlib import Path

import pytest
from web_helpers import _fresh_cache, officer, officer_client, operator, operator_client, staff_user  # noqa: F401

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "cdp" / "segment" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def named_pages(prefix: str) -> set[str]:
    pattern = re.compile(rf"(?<![\w/]){prefix}[a-z0-9_/-]*")
    return {match.group(0) for doc in DOCS for match in pattern.finditer(doc.read_text())
            if match.group(0).endswith("/")}


def test_every_ops_page_the_docs_name_opens_for_an_operator(operator_client):
    pages = named_pages("/ops/")
    assert {"/ops/", "/ops/ingestion/", "/ops/merges/"} <= pages
    refused = {page: code for page in sorted(pages) if (code := operator_client.get(page).status_code) != 200}
    assert refused == {}


def test_every_compliance_page_the_docs_name_opens_for_a_compliance_officer(officer_client):
    pages = named_pages("/compliance/")
    assert "/compliance/" in pages
    refused = {page: code for page in sorted(pages) if (code := officer_client.get(page).status_code) != 200}
    assert refused == {}


def test_the_segment_readme_sends_operators_to_the_ingestion_errors_they_may_read(operator_client):
    text = (ROOT / "cdp" / "segment" / "README.md").read_text()
    assert "/ops/ingestion/" in text
    assert operator_client.get("/admin/segment/ingestionerror/").status_code == 200
