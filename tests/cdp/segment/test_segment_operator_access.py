"""The pages the docs send operators to open for operators (the ingestion-error log answered
403 to them), and what they are told they cannot reach stays closed."""

from __future__ import annotations

import pytest
from django.test import Client

from cdp.segment.services import ingestion_errors_log
from cdp.services.sources import source_create
from cdp.staff import OPERATOR, staff_create

pytestmark = pytest.mark.django_db


def test_operators_read_the_ingestion_error_log_but_not_api_keys():
    source, _ = source_create(key="web", name="Web", kind="first_party", trust=50)
    ingestion_errors_log(source=source, failures=[({"type": "nope"}, ["unknown_type"], None)])
    client = Client()
    client.force_login(staff_create(username="otto", role=OPERATOR, password="x" * 16))
    assert client.get("/admin/segment/ingestionerror/").status_code == 200
    assert client.get("/ops/ingestion/").status_code == 200
    assert client.get("/admin/api/apikey/").status_code == 403
