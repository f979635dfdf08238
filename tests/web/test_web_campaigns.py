"""/ops/campaigns/: operators only, a CSRF-checked create form, detail with the allocation
chart and DP results, an SRM warning, and the stop button."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import pytest
from django.test import Client
from web_helpers import officer, officer_client, operator, operator_client, staff_user  # noqa: F401

from campaigns.models import Campaign
from campaigns.services.campaigns import campaign_create
from personalization.models import DpRelease, PrivacyBudget

pytestmark = pytest.mark.django_db

FORM = {"key": "spring", "name": "Spring", "variants": "control\ndiscount=3", "allocation": "fixed",
        "purpose": "marketing", "metric_event": "purchase", "metric_kind": "conversion"}


def test_create_form_needs_the_operator_role_and_csrf(operator_client, officer_client, operator):
    assert officer_client.get("/ops/campaigns/").status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    assert strict.post("/ops/campaigns/", FORM).status_code == 403
    response = operator_client.post("/ops/campaigns/", FORM)
    assert response.status_code == 302 and response["Location"].endswith("/ops/campaigns/spring/")
    assert Campaign.objects.get(key="spring").weights == [0.25, 0.75]
    bad = operator_client.post("/ops/campaigns/", {**FORM, "key": "other", "variants": "only-one"})
    assert bad.status_code == 200 and b"2 to 10 variants" in bad.content
    page = operator_client.get("/ops/campaigns/")
    assert b"spring" in page.content and b"csrfmiddlewaretoken" in page.content


def test_detail_shows_chart_srm_warning_and_stops(operator_client):
    campaign = campaign_create(key="srm", name="SRM", actor="t", metric={"event": "purchase"},
                               variants=[{"key": "a"}, {"key": "b"}])
    budget = PrivacyBudget.objects.create(dataset="customers", epsilon_limit=10, period_epsilon_limit=1)
    # A released split of 900 against 100 where half and half was asked for.
    DpRelease.objects.create(budget=budget, dataset="customers", query_key=f"campaign:{campaign.id}:counts:d",
                             statistic="campaign_counts", values={"counts": [800, 100, 90, 10]}, epsilon=0.05,
                             mechanism="discrete Laplace", error_bound_95=60.0, contribution_bound=1)
    page = operator_client.get("/ops/campaigns/srm/")
    assert page.status_code == 200
    assert b"Sample ratio mismatch" in page.content and b"<svg" in page.content
    response = operator_client.post("/ops/campaigns/srm/stop/")
    assert response.status_code == 302
    assert Campaign.objects.get(key="srm").stopped_at is not None
