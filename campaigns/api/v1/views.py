"""Campaign endpoints (CONTRACT.md), thin over campaigns.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from campaigns.models import Allocation, MetricKind
from campaigns.selectors import campaign_for_person
from campaigns.services.assignment import assignment_get, assignments_get
from campaigns.services.campaigns import campaign_as_dict, campaign_create, campaign_get, campaign_stop
from campaigns.services.results import campaign_results
from cdp.core.http.errors import ApiErrorCode, PayloadTooLarge
from cdp.core.http.idempotency import StoredResponse
from cdp.core.http.permissions import profile_visible_check, profiles_visible_to_key
from cdp.core.http.schema import problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, uuid_or_404, validated
from cdp.models import Profile, ProfileStatus
from consent.policy import PURPOSES
from consent.services.gpc import accessor_of
from personalization.api.v1.views import NO_STORE
from personalization.selectors import profile_live_check

MAX_BULK = 1000


class CampaignInputSerializer(serializers.Serializer):
    class VariantSerializer(serializers.Serializer):
        key = serializers.CharField(max_length=64)
        weight = serializers.FloatField(required=False, min_value=0.0, help_text="Fixed allocation: relative share.")

    class MetricSerializer(serializers.Serializer):
        event = serializers.CharField(max_length=200, help_text="Event name (or type, e.g. purchase) that counts.")
        kind = serializers.ChoiceField(choices=MetricKind.values, default=MetricKind.CONVERSION)

    class FrequencyCapSerializer(serializers.Serializer):
        exposures = serializers.IntegerField(min_value=1, max_value=100_000)
        hours = serializers.IntegerField(min_value=1, max_value=100_000, default=24)

    key = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    purpose = serializers.ChoiceField(choices=list(PURPOSES), default="marketing")
    audience = serializers.DictField(required=False, allow_null=True,
                                     help_text='{"segment": id} or {"rule": {"attribute", "op", "value"} or [...]}; '
                                               "rules use non-personal attributes only.")
    variants = VariantSerializer(many=True, help_text="2–10; the first is the control.")
    allocation = serializers.ChoiceField(choices=Allocation.values, default=Allocation.FIXED)
    control_share = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    metric = MetricSerializer()
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    ends_at = serializers.DateTimeField(required=False, allow_null=True)
    frequency_cap = FrequencyCapSerializer(required=False, allow_null=True)
    min_weight = serializers.FloatField(required=False, min_value=0.0, max_value=0.5, default=0.01)
    warmup = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000, default=100)


class CampaignCreateApi(ApiView):
    required_scopes = {"POST": Scope.CAMPAIGNS_WRITE}

    @extend_schema(operation_id="campaign_create", tags=["campaigns"], request=CampaignInputSerializer,
                   responses={201: dict, **problems(400, 422)},
                   description="Scope `campaigns:write`. A fixed (A/B/n) or adaptive (Thompson sampling) campaign. "
                               "Only people the consent policy allows for `purpose` take part.")
    def post(self, request):
        data = validated(CampaignInputSerializer, request.data)

        def run() -> StoredResponse:
            campaign = campaign_create(actor=self.actor(), **data)
            return StoredResponse(201, campaign_as_dict(campaign))

        return self.idempotent(run)


class CampaignDetailApi(ApiView):
    required_scopes = {"GET": Scope.CAMPAIGNS_READ}

    @extend_schema(operation_id="campaign_get", tags=["campaigns"], responses={200: dict, **problems(404)},
                   description="Scope `campaigns:read`. The campaign with its current allocation and status.")
    def get(self, request, key: str):
        return Response(campaign_as_dict(campaign_get(key=key)))


class CampaignStopApi(ApiView):
    required_scopes = {"POST": Scope.CAMPAIGNS_WRITE}

    @extend_schema(operation_id="campaign_stop", tags=["campaigns"], request=None,
                   responses={200: dict, **problems(404)},
                   description="Scope `campaigns:write`. Stops assigning at once: everyone gets the control content "
                               "with `in_experiment: false`. Stopping again changes nothing.")
    def post(self, request, key: str):
        def run() -> StoredResponse:
            return StoredResponse(200, campaign_as_dict(campaign_stop(key=key, actor=self.actor())))

        return self.idempotent(run)


class CampaignResultsApi(ApiView):
    required_scopes = {"GET": Scope.CAMPAIGNS_READ}

    @extend_schema(operation_id="campaign_results", tags=["campaigns"], responses={200: dict, **problems(404)},
                   description="Scope `campaigns:read`. Per-arm figures from the latest differentially private "
                               "release (ε stated under `privacy`), lift against the first variant with "
                               "always-valid 95% intervals, the SRM p-value and each arm's probability of being "
                               "best. Before the first release: no arms and `updated_at` null.")
    def get(self, request, key: str):
        return Response(campaign_results(campaign=campaign_get(key=key)))


class ProfileCampaignApi(ApiView):
    required_scopes = {"GET": Scope.CAMPAIGNS_READ}

    @extend_schema(operation_id="profile_campaign", tags=["campaigns"],
                   responses={200: dict, **problems(404, 409, 410)},
                   description="Scope `campaigns:read`. The person's variant: sticky, drawn on first ask. Without "
                               "consent for the campaign's purpose, outside its audience, after a withdrawal or "
                               "when the campaign is not running: the control with `in_experiment: false` and "
                               "`reason`. `capped: true`: the person has seen the campaign its frequency cap's "
                               "number of times in the window (show the control content).")
    def get(self, request, profile_id: str, key: str):
        pid = uuid_or_404(profile_id, message="No profile has this id.")
        profile_visible_check(api_key=request.auth, profile_id=pid)
        campaign, person, existing = campaign_for_person(key=key, profile_id=pid)
        profile_live_check(person)
        return Response(assignment_get(campaign=campaign, profile_id=pid, existing=existing,
                                       accessor=accessor_of(request, actor=self.actor())), headers=NO_STORE)


class CampaignAssignmentsApi(ApiView):
    required_scopes = {"POST": Scope.CAMPAIGNS_READ}

    class InputSerializer(serializers.Serializer):
        profile_ids = serializers.ListField(child=serializers.UUIDField(), allow_empty=False)

    @extend_schema(operation_id="campaign_assignments", tags=["campaigns"], request=InputSerializer,
                   responses={200: dict, **problems(400, 404, 413)},
                   description=f"Scope `campaigns:read`. The bulk form (an email send), up to {MAX_BULK} people: "
                               "`{\"results\": [{\"index\", \"profile_id\", \"status\", \"variant\", "
                               "\"in_experiment\", \"propensity\", \"reason\"}]}`; status `assigned` or "
                               "`unknown_profile` (unknown, erased, merged away, or not visible to the key).")
    def post(self, request, key: str):
        raw = request.data.get("profile_ids") if isinstance(request.data, dict) else None
        if isinstance(raw, list) and len(raw) > MAX_BULK:
            raise PayloadTooLarge(f"A request may name at most {MAX_BULK} people.",
                                  code=ApiErrorCode.TOO_MANY_RECORDS)
        ids = validated(self.InputSerializer, request.data)["profile_ids"]
        campaign = campaign_get(key=key)
        visible = profiles_visible_to_key(api_key=request.auth, profile_ids=ids)
        active = set(Profile.objects.filter(pk__in=visible, status=ProfileStatus.ACTIVE).values_list("id", flat=True))
        answers = assignments_get(campaign=campaign, profile_ids=sorted(active, key=str),
                                  accessor=accessor_of(request, actor=self.actor()))
        results = [{"index": i, "profile_id": str(pid), "status": "assigned", **answers[pid]} if pid in answers
                   else {"index": i, "profile_id": str(pid), "status": "unknown_profile"} for i, pid in enumerate(ids)]
        return Response({"results": results}, headers=NO_STORE)
