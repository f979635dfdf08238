"""Keeping offline evaluations of the recommender for the operator dashboard."""

from __future__ import annotations

from personalization.models import RecommenderEvaluation


def recommender_evaluation_save(document: dict) -> RecommenderEvaluation:
    """Store one `evaluate_recommender` document (aggregate metrics only)."""
    return RecommenderEvaluation.objects.create(dataset=str(document["dataset"])[:200], k=int(document["k"]),
                                                document=document)
