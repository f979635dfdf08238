"""Reviewing refused merges and undoing merges."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from cdp.api.selectors import CONFLICT_FILTERS, merge_conflicts_page, merge_profile_ids
from cdp.core.errors import NotFound
from cdp.core.http.idempotency import StoredResponse
from cdp.core.http.permissions import key_boundary, profiles_visible_to_key
from cdp.core.http.schema import IDEMPOTENCY_HEADER, problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, uuid_or_404
from cdp.models import ConflictStatus
from cdp.services.merges import merge_undo

PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description="Page size, 1-1000 (default 100)."),
    OpenApiParameter("cursor", str, description="`next_cursor` of the previous page."),
]


class MergeConflictSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    profile_id = serializers.UUIDField(help_text="Where the record went.")
    other_profile_ids = serializers.ListField(child=serializers.UUIDField(),
                                              help_text="Profiles the record also matched.")
    record_id = serializers.UUIDField(allow_null=True)
    reason = serializers.CharField(help_text=(
        "`conflicting_source_ids`, `merge_blocked`, or a link the identity rules held for review because a "
        "`client` source made it: `untrusted_contact_identifier` (an email or phone for a profile that holds one), "
        "`untrusted_merge` (two profiles that both hold one)."))
    status = serializers.ChoiceField(choices=ConflictStatus.values)
    created_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)


class MergeConflictsListApi(ApiView):
    required_scopes = {"GET": Scope.PROFILES_WRITE}

    class OutputSerializer(serializers.Serializer):
        results = MergeConflictSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor`; null on the last page.")

    @extend_schema(
        operation_id="merge_conflicts_list", tags=["merges"],
        parameters=[*PAGE_PARAMETERS, OpenApiParameter(
            "status", str, enum=list(CONFLICT_FILTERS), description="Default `open`.")],
        responses={200: OutputSerializer, **problems(400)},
        description="Scope `profiles:write`. Merges that protection refused, oldest first. A key bound to a "
                    "source sees only conflicts all of whose profiles that source contributed.",
    )
    def get(self, request):
        page = merge_conflicts_page(status=request.query_params.get("status", ConflictStatus.OPEN),
                                    query_params=request.query_params, visible=key_boundary(request.auth))
        rows = page.rows
        results = [{
            "id": str(c.id), "profile_id": str(c.profile_id), "other_profile_ids": c.other_profiles,
            "record_id": str(c.record_id) if c.record_id else None, "reason": c.reason, "status": c.status,
            "created_at": c.created_at.isoformat(),
            "resolved_at": c.resolved_at.isoformat() if c.resolved_at else None,
        } for c in rows]
        return Response({"results": results, "next_cursor": page.next_cursor})



class MergeUnmergeApi(ApiView):
    required_scopes = {"POST": Scope.PROFILES_WRITE}

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(help_text="The merge.")
        status = serializers.ChoiceField(choices=["undone"])
        profile_id = serializers.UUIDField(help_text="The profile that had survived the merge.")
        restored_profile_id = serializers.UUIDField(help_text="The profile restored by the undo.")

    @extend_schema(
        operation_id="merges_unmerge", tags=["merges"], request=None, parameters=[IDEMPOTENCY_HEADER],
        responses={200: OutputSerializer, **problems(400, 404, 409, 422)},
        description="Scope `profiles:write`. Restores both profiles as before the merge and blocks the pair "
                    "from merging again automatically. 409 when already undone or no longer restorable. A key "
                    "bound to a source may undo only merges of people that source contributed (else 404, as an "
                    "unknown merge).",
    )
    def post(self, request, merge_id):
        mid = uuid_or_404(merge_id, message="No merge has this id.")
        pair = merge_profile_ids(merge_id=mid)
        if pair and not profiles_visible_to_key(api_key=request.auth, profile_ids=pair):
            raise NotFound("No merge has this id.")

        def run() -> StoredResponse:
            merge = merge_undo(merge_id=mid, actor=self.actor())
            return StoredResponse(200, {"id": str(merge.id), "status": "undone", "profile_id": str(merge.survivor_id),
                                        "restored_profile_id": str(merge.absorbed_id)})

        return self.idempotent(run)
