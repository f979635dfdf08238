"""Recommendations and segments endpoints (CONTRACT.md), thin over the selectors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from cdp.core.errors import ApplicationError, NotFound
from cdp.core.http.errors import ApiErrorCode
from cdp.core.http.permissions import key_boundary, profile_visible_check
from cdp.core.http.schema import problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, uuid_or_404
from consent.policy import PURPOSES
from consent.services.gpc import accessor_of
from personalization.errors import PersonalizationErrorCode
from personalization.models import Segment
from personalization.selectors import (
    profile_recommendations_read,
    segment_as_dict,
    segment_members_page,
    segments_page,
)

DEFAULT_RECOMMENDATIONS = 10
MAX_RECOMMENDATIONS = 100
DEFAULT_MEMBERS_PURPOSE = "marketing"
NO_STORE = {"Cache-Control": "no-store"}  # personal data: no proxy or browser may keep a copy


class ExplanationSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="Plain sentences saying why: the person's own items and the category "
                                           "they share with this one; no percentages.")
    parts = serializers.DictField(child=serializers.FloatField(),
                                  help_text="Share of the score from each part of the model (`exposure`: the "
                                            "re-ranking's penalty on items the model over-serves).")
    contributions = serializers.DictField(child=serializers.FloatField(),
                                          help_text="Each part's exact additive contribution to the score.")
    because_of = serializers.ListField(child=serializers.DictField(),
                                       help_text="The person's own items that raised the score: item_id, title, "
                                                 "share (of what they raised it by), contribution, action.")
    other_items_contribution = serializers.FloatField(help_text="What the person's other items added; with "
                                                                "`because_of` it sums to the personal parts.")
    matched_attributes = serializers.ListField(child=serializers.DictField(),
                                               help_text="[{name, value, contribution}] content attributes shared "
                                                         "with the person's items.")
    segment = serializers.DictField(allow_null=True, help_text="{id, name} when the segment was used.")
    fallback = serializers.CharField(allow_null=True, help_text="segment_popularity, popularity or null.")
    category = serializers.CharField(allow_null=True, required=False, help_text="The item's catalogue category.")
    pinned = serializers.DictField(allow_null=True, required=False,
                                   help_text="{segment} when our team pinned the item first (segment null: for "
                                             "everyone); then no model part is listed and the score is the "
                                             "list's best model score.")
    data_sources = serializers.ListField(child=serializers.CharField(), help_text="Source keys of the data used.")
    purposes = serializers.ListField(child=serializers.CharField(), help_text="Purposes the data was used under.")
    model_version = serializers.CharField()


class ProfileRecommendationsApi(ApiView):
    required_scopes = {"GET": Scope.RECOMMENDATIONS_READ}
    replica_read_methods = frozenset({"GET"})  # lag-tolerant: a replica may serve (cdp.core.db_routing)

    class OutputSerializer(serializers.Serializer):
        class RecommendationSerializer(serializers.Serializer):
            item_id = serializers.CharField()
            title = serializers.CharField()
            score = serializers.FloatField()
            rank = serializers.IntegerField()
            explanation = ExplanationSerializer()

        recommendations = RecommendationSerializer(many=True)
        generated_at = serializers.DateTimeField(allow_null=True)
        model_version = serializers.CharField(allow_null=True)
        as_of = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        operation_id="profile_recommendations", tags=["personalization"],
        parameters=[OpenApiParameter("limit", int, description=f"1–{MAX_RECOMMENDATIONS}, default "
                                                               f"{DEFAULT_RECOMMENDATIONS}.")],
        responses={200: OutputSerializer, **problems(400, 404, 409, 410)},
        description="Scope `recommendations:read`. The person's recommendations from the latest pipeline run, "
                    "each with its explanation, refreshed when the person's events arrive; `as_of`: when the newest "
                    "event the list reflects occurred. None computed yet: an empty list and `generated_at` null. "
                    "Without `personalization` consent: 403 `consent_required`. A merged-away id: 409 `merged` "
                    "naming `merged_into`; an erased one: 410 `erased`. A key bound to a source sees only people "
                    "that source contributed; anyone else is 404, as an unknown id.",
    )
    def get(self, request, profile_id: str):
        limit = _limit(request.query_params.get("limit"))
        pid = uuid_or_404(profile_id, message="No profile has this id.")
        profile_visible_check(api_key=request.auth, profile_id=pid)
        body = profile_recommendations_read(profile_id=pid, limit=limit,
                                            accessor=accessor_of(request, actor=self.actor()))
        return Response(body, headers=NO_STORE)


def _limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_RECOMMENDATIONS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RECOMMENDATIONS:
        raise ApplicationError(f"limit must be a whole number from 1 to {MAX_RECOMMENDATIONS}.",
                               code=ApiErrorCode.INVALID_LIMIT)
    return int(raw)


class StatisticSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="The differentially private (noisy) value.")
    error_95 = serializers.FloatField(allow_null=True, help_text="|value − truth| below this with 95% probability.")
    epsilon = serializers.FloatField(help_text="Privacy loss charged for it (0: derived from other releases).")
    mechanism = serializers.CharField()
    noise_scale = serializers.FloatField(allow_null=True, help_text="Scale of the noise added (null: derived).")
    released_at = serializers.DateTimeField()


class SegmentSerializer(serializers.Serializer):
    class SegmentationSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        k = serializers.IntegerField()
        created_at = serializers.DateTimeField()

    class StatisticsSerializer(serializers.Serializer):
        size = StatisticSerializer(required=False, help_text="Members (noisy count).")
        total_spend = StatisticSerializer(required=False)
        average_spend = StatisticSerializer(required=False)

    id = serializers.UUIDField()
    name = serializers.CharField()
    segmentation = SegmentationSerializer()
    statistics = StatisticsSerializer(allow_null=True, help_text="Latest DP releases; null before any release.")


class SegmentsListApi(ApiView):
    required_scopes = {"GET": Scope.SEGMENTS_READ}

    class OutputSerializer(serializers.Serializer):
        results = SegmentSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="segments_list", tags=["personalization"],
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("cursor", str)],
        responses={200: OutputSerializer, **problems(400)},
        description="Scope `segments:read`. The segments of the latest segmentation with their latest "
                    "differentially private statistics (size, total and average spend), each with ε, "
                    "mechanism and 95% error bound. Raw figures are never served.",
    )
    def get(self, request):
        page, statistics = segments_page(query_params=request.query_params)
        return Response({"results": [segment_as_dict(s, statistics) for s in page.rows],
                         "next_cursor": page.next_cursor})


class SegmentMembersApi(ApiView):
    replica_read_methods = frozenset({"GET"})  # lag-tolerant: a replica may serve (cdp.core.db_routing)
    required_scopes = {"GET": Scope.SEGMENTS_MEMBERS}

    class OutputSerializer(serializers.Serializer):
        class MemberSerializer(serializers.Serializer):
            profile_id = serializers.UUIDField()
            rfm_score = serializers.CharField(help_text="Recency, frequency, monetary quintiles, 5 best: `545`.")

        results = MemberSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="segment_members", tags=["personalization"],
        parameters=[OpenApiParameter("purpose", str, enum=list(PURPOSES),
                                     description=f"What the listing is for (default {DEFAULT_MEMBERS_PURPOSE}); "
                                                 "only members allowing it are listed."),
                    OpenApiParameter("limit", int), OpenApiParameter("cursor", str)],
        responses={200: OutputSerializer, **problems(400, 403, 404)},
        description="Scope `segments:members` (personal data: `segments:read` does not give it). Members of a "
                    "segment, only profiles that allow the given purpose (and analytics, under which they were "
                    "segmented), in profile id order. A key bound to a source lists only people that source "
                    "contributed. Every listing is recorded in the access log, one entry per person listed.",
    )
    def get(self, request, segment_id: str):
        purpose = request.query_params.get("purpose") or DEFAULT_MEMBERS_PURPOSE
        if purpose not in PURPOSES:
            raise ApplicationError("purpose must be one of " + ", ".join(PURPOSES) + ".",
                                   code=PersonalizationErrorCode.UNKNOWN_PURPOSE)
        sid = uuid_or_404(segment_id, message="No segment has this id.")
        segment = Segment.objects.filter(id=sid).first()
        if segment is None:
            raise NotFound("No segment has this id.")
        page = segment_members_page(segment=segment, purpose=purpose, query_params=request.query_params,
                                    accessor=accessor_of(request, actor=self.actor()),
                                    visible=key_boundary(request.auth))
        return Response({
            "results": [{"profile_id": str(m.profile_id), "rfm_score": m.rfm_score} for m in page.rows],
            "next_cursor": page.next_cursor,
        }, headers=NO_STORE)
