"""Recommendations and segments endpoints (CONTRACT.md), thin over the selectors."""

from __future__ import annotations

from uuid import UUID

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from cdp.core.errors import ApplicationError, Conflict, Gone, NotFound
from cdp.models import ProfileStatus
from consent import policy
from consent.purposes import PURPOSES
from personalization.api.v1.base import (
    ApiView,
    Scope,
    cursor_decode,
    cursor_encode,
    key_boundary,
    page_limit,
    problems,
    profile_visible_check,
    record_personal_data_access,
    uuid_or_404,
)
from personalization.errors import ConsentRequired, PersonalizationErrorCode
from personalization.models import Segment
from personalization.selectors import (
    profile_with_recommendations,
    segment_as_dict,
    segment_members_page,
    segment_statistics,
    segmentation_latest,
)

DEFAULT_RECOMMENDATIONS = 10
MAX_RECOMMENDATIONS = 100
DEFAULT_MEMBERS_PURPOSE = "marketing"
NO_STORE = {"Cache-Control": "no-store"}  # personal data: no proxy or browser may keep a copy


class ExplanationSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="One sentence saying why, in plain words.")
    parts = serializers.DictField(child=serializers.FloatField(),
                                  help_text="Share of the score from each part of the model.")
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

    @extend_schema(
        operation_id="profile_recommendations", tags=["personalization"],
        parameters=[OpenApiParameter("limit", int, description=f"1–{MAX_RECOMMENDATIONS}, default "
                                                               f"{DEFAULT_RECOMMENDATIONS}.")],
        responses={200: OutputSerializer, **problems(400, 404, 409, 410)},
        description="Scope `recommendations:read`. The person's recommendations from the latest pipeline run, "
                    "each with its explanation. None computed yet: an empty list and `generated_at` null. "
                    "Without `personalization` consent: 403 `consent_required`. A merged-away id: 409 `merged` "
                    "naming `merged_into`; an erased one: 410 `erased`. A key bound to a source sees only people "
                    "that source contributed; anyone else is 404, as an unknown id.",
    )
    def get(self, request, profile_id: str):
        limit = _limit(request.query_params.get("limit"))
        pid = uuid_or_404(profile_id, message="No profile has this id.")
        profile_visible_check(api_key=request.auth, profile_id=pid)
        profile, body = profile_with_recommendations(profile_id=pid, limit=limit)
        profile_live_check(profile)
        if not policy.is_allowed(pid, "personalization"):
            raise ConsentRequired("The person has not allowed personalization.")
        if body["recommendations"]:
            record_personal_data_access(actor=self.actor(), profile_ids=[pid], fields=["recommendations"],
                                        purpose="personalization")
        return Response(body, headers=NO_STORE)


def profile_live_check(profile: dict | None) -> None:
    """404 unknown, 410 erased, 409 merged (naming the survivor), as profile_get_live."""
    if profile is None:
        raise NotFound("No profile has this id.")
    if profile["status"] == ProfileStatus.ERASED:
        raise Gone("The profile was erased.", code="erased")
    if profile["status"] == ProfileStatus.MERGED:
        raise Conflict("The profile was merged into another.", code="merged",
                       extra={"merged_into": str(profile["merged_into_id"])})


def _limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_RECOMMENDATIONS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RECOMMENDATIONS:
        raise ApplicationError(f"limit must be a whole number from 1 to {MAX_RECOMMENDATIONS}.",
                               code="invalid_limit")
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
        limit = page_limit(request.query_params.get("limit"))
        segmentation = segmentation_latest()
        if segmentation is None:
            return Response({"results": [], "next_cursor": None})
        queryset = Segment.objects.filter(segmentation=segmentation).select_related("segmentation").order_by("index")
        cursor = request.query_params.get("cursor")
        if cursor:
            after = cursor_decode(cursor, size=1)[0]
            if not after.isdigit():
                raise ApplicationError("The cursor is not valid; start again without one.", code="invalid_cursor")
            queryset = queryset.filter(index__gt=int(after))
        rows = list(queryset[:limit + 1])
        statistics = segment_statistics(segmentation)
        next_cursor = cursor_encode([str(rows[limit - 1].index)]) if len(rows) > limit else None
        return Response({"results": [segment_as_dict(s, statistics) for s in rows[:limit]],
                         "next_cursor": next_cursor})


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
        limit = page_limit(request.query_params.get("limit"))
        sid = uuid_or_404(segment_id, message="No segment has this id.")
        segment = Segment.objects.filter(id=sid).first()
        if segment is None:
            raise NotFound("No segment has this id.")
        after = None
        if request.query_params.get("cursor"):
            raw = cursor_decode(request.query_params["cursor"], size=1)[0]
            try:
                after = UUID(raw)
            except ValueError:
                raise ApplicationError("The cursor is not valid; start again without one.",
                                       code="invalid_cursor") from None
        members, last = segment_members_page(segment=segment, purpose=purpose, after=after, limit=limit,
                                             visible=key_boundary(request.auth))
        record_personal_data_access(actor=self.actor(), profile_ids=[m.profile_id for m in members],
                                    fields=["segment_membership"], purpose=purpose)
        return Response({
            "results": [{"profile_id": str(m.profile_id), "rfm_score": m.rfm_score} for m in members],
            "next_cursor": cursor_encode([str(last)]) if last else None,
        }, headers=NO_STORE)
