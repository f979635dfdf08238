"""GET /api/v1/profiles/{id}/predictions (CONTRACT.md): churn risk and expected value."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from cdp.core.http.permissions import profile_visible_check
from cdp.core.http.schema import problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, uuid_or_404
from consent.services.gpc import accessor_of
from personalization.api.v1.views import NO_STORE
from personalization.selectors import profile_predictions_read


class ProfilePredictionsApi(ApiView):
    required_scopes = {"GET": Scope.PREDICTIONS_READ}

    class OutputSerializer(serializers.Serializer):
        class ExplanationSerializer(serializers.Serializer):
            text = serializers.CharField(help_text="One sentence: buying habit, last purchase, the figures.")
            orders = serializers.IntegerField(help_text="Orders so far.")
            typical_interval_days = serializers.IntegerField(allow_null=True)
            days_since_last_purchase = serializers.IntegerField()
            p_no_purchase_90d = serializers.FloatField()
            expected_spend_per_purchase = serializers.FloatField()
            horizon_days = serializers.IntegerField()

        p_alive = serializers.FloatField(help_text="Probability the person is still a customer (MBG/NBD).")
        expected_purchases_90d = serializers.FloatField(help_text="Expected orders in the next 90 days.")
        expected_value = serializers.FloatField(help_text="Expected spend in the next 90 days (Gamma-Gamma).")
        churn_risk = serializers.ChoiceField(choices=["low", "medium", "high"],
                                             help_text="From the chance of no purchase in the next 90 days.")
        explanation = ExplanationSerializer()
        model_version = serializers.CharField()
        generated_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="profile_predictions", tags=["personalization"],
        responses={200: OutputSerializer, **problems(403, 404, 409, 410)},
        description="Scope `predictions:read`. The person's churn risk and expected 90-day value from the "
                    "latest pipeline run that predicted them. Without `analytics` consent: 403 "
                    "`consent_required`; none computed yet: 404. A merged-away id: 409 `merged`; an erased one: "
                    "410 `erased`. A key bound to a source sees only people that source contributed. Each read "
                    "is recorded in the access log.",
    )
    def get(self, request, profile_id: str):
        pid = uuid_or_404(profile_id, message="No profile has this id.")
        profile_visible_check(api_key=request.auth, profile_id=pid)
        body = profile_predictions_read(profile_id=pid, accessor=accessor_of(request, actor=self.actor()))
        return Response(body, headers=NO_STORE)
