"""/ops/campaigns/: list, create, detail (allocation over time, lift with always-valid
intervals from the latest DP release, SRM warning), stop, and on-demand recompute and release.
Operators only; every figure about people shown here is a DP release (README, "Campaigns")."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from campaigns.models import Campaign
from campaigns.services.campaigns import campaign_as_dict, campaign_create, campaign_get, campaign_stop
from campaigns.services.results import campaign_results
from campaigns.tasks import campaign_results_release, campaign_weights_recompute
from cdp.core.errors import ApplicationError
from cdp.staff import OPERATOR
from web import charts, ops_lists
from web.campaign_forms import CampaignForm
from web.filters import CampaignFilterForm, list_filters, page_of, query_without
from web.staff import actor_of, role_required

operator_only = role_required(OPERATOR)


@never_cache
@operator_only
def campaigns(request):
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = campaign_create(actor=actor_of(request), **form.campaign_arguments())
        except ApplicationError as error:
            form.add_error(None, error.message)
        except ValidationError as error:
            form.add_error("variants", error)
        else:
            messages.success(request, f"Campaign {campaign.key} created.")
            return redirect("web:ops-campaign", key=campaign.key)
    filters = CampaignFilterForm(request.GET or None)
    search, valid = list_filters(filters)
    page = page_of(ops_lists.campaign_list(**search) if valid else [],
                   filters.page_number() if filters.is_bound else 1)
    page.object_list = [campaign_as_dict(c) for c in page.object_list]
    return render(request, "web/ops/campaigns.html", {
        "page": page, "filters": filters, "query": query_without(request), "form": form, "section": "campaigns"},
        status=200 if valid else 400)


def allocation_chart(campaign: Campaign):
    snapshots = list(campaign.snapshots.order_by("at", "id"))
    if not snapshots:
        return None
    labels = [s.at.strftime("%d %b %H:%M") for s in snapshots]
    series = [charts.Series(variant["key"], [s.weights[i] for s in snapshots], [None] * len(snapshots))
              for i, variant in enumerate(campaign.variants)]
    return charts.line_chart(labels, series, chart_id="campaign-allocation", title="Allocation over time",
                             description="Each variant's share of new participants after every change of the "
                                         "allocation (creation and each bandit recompute).")


@never_cache
@operator_only
def campaign(request, key: str):
    try:
        item = campaign_get(key=key)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("web:ops-campaigns")
    return render(request, "web/ops/campaign.html", {
        "campaign": campaign_as_dict(item), "results": campaign_results(campaign=item),
        "chart": allocation_chart(item), "section": "campaigns"})


@require_POST
@operator_only
def campaign_action(request, key: str, action: str):
    try:
        item = campaign_get(key=key)
        if action == "stop":
            campaign_stop(key=key, actor=actor_of(request))
            messages.success(request, "Stopped: everyone gets the control content from now on.")
        elif action == "recompute":
            campaign_weights_recompute.delay(item.id)
            messages.success(request, "Recomputing the allocation (a bandit warming up keeps its shares).")
        elif action == "release":
            campaign_results_release.delay(item.id)
            messages.success(request, "Releasing today's figures (at most once a day, paid from the privacy "
                                      "budget).")
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("web:ops-campaign", key=key)
