"""Campaign tasks: thin wrappers over campaigns.services (beat runs the *_all ones)."""

from __future__ import annotations

import logging

from celery import shared_task

from campaigns.services.allocation import campaign_weights_recompute as weights_recompute
from campaigns.services.allocation import running_bandit_ids
from campaigns.services.results import campaign_results_release as results_release
from campaigns.services.results import campaigns_to_release
from personalization.errors import BudgetExceeded
from personalization.tasks import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)
RETRIES = {"autoretry_for": TRANSIENT_ERRORS, "retry_backoff": 5, "max_retries": 5, "soft_time_limit": 600}


@shared_task(name="campaigns.campaign_weights_recompute", **RETRIES)
def campaign_weights_recompute(campaign_id: int) -> list[float] | None:
    return weights_recompute(campaign_id=campaign_id)


@shared_task(name="campaigns.campaign_weights_recompute_all", ignore_result=True)
def campaign_weights_recompute_all() -> None:
    for campaign_id in running_bandit_ids():
        campaign_weights_recompute.delay(campaign_id)


@shared_task(name="campaigns.campaign_results_release", **RETRIES)
def campaign_results_release(campaign_id: int) -> list[int]:
    try:
        return [release.id for release in results_release(campaign_id=campaign_id)]
    except BudgetExceeded:
        logger.warning("campaign_results_refused", extra={"campaign_id": campaign_id})
        return []


@shared_task(name="campaigns.campaign_results_release_all", ignore_result=True)
def campaign_results_release_all() -> None:
    for campaign_id in campaigns_to_release():
        campaign_results_release.delay(campaign_id)
