"""Profiles: batch upsert, lookup, read and operator corrections."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from cdp.api.selectors import profiles_lookup
from cdp.api.v1.serializers import (
    BatchErrorSerializer,
    IdentifiersSerializer,
    ProfileOrMergedSerializer,
    ProfileSerializer,
    entries_field,
    profile_representation,
)
from cdp.core.http.errors import PreconditionRequired, safe_batch_results
from cdp.core.http.idempotency import StoredResponse
from cdp.core.http.permissions import (
    key_boundary,
    profile_visible_check,
    source_for_write,
    source_known,
    unbound_only,
)
from cdp.core.http.schema import ETAG, IDEMPOTENCY_HEADER, problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, batch_limit, uuid_or_404, validated
from cdp.core.identifiers import IDENTIFIER_KINDS, SOURCE_SCOPED_KINDS
from cdp.errors import CdpErrorCode
from cdp.selectors import profile_read
from cdp.services.conflicts import conflict_results_describe
from cdp.services.corrections import profile_correct
from cdp.services.records import phone_region
from cdp.services.resolution import profiles_ingest
from consent.services.gpc import accessor_of

MAX_PROFILE_RECORDS = 1000
MAX_PROFILE_BATCH_BYTES = 2 * 1024 * 1024
NO_STORE = {"Cache-Control": "no-store"}  # personal data: no proxy or browser may keep a copy


def etag(version: int) -> str:
    return f'"{version}"'


class ProfileRecordSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=255)
    identifiers = IdentifiersSerializer(help_text="At least one usable identifier.")
    attributes = serializers.DictField(child=serializers.JSONField(), required=False)
    observed_at = serializers.DateTimeField(required=False, help_text="Default: when received.")


class ProfileRecordResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "updated", "merged", "unchanged", "conflict", "held",
                                              "rejected", "suppressed"])
    profile_id = serializers.UUIDField(allow_null=True)
    errors = BatchErrorSerializer(many=True)
    reason = serializers.CharField(required=False, help_text="Only with `conflict`: why the link was refused, as "
                                   "in GET /merge-conflicts (e.g. `conflicting_source_ids`).")
    record_id = serializers.UUIDField(required=False, help_text="Only with `conflict`: the stored record.")
    conflict_id = serializers.UUIDField(required=False, help_text="Only with `conflict`: the merge conflict.")


class ProfilesBatchApi(ApiView):
    required_scopes = {"POST": Scope.PROFILES_WRITE}
    max_body_bytes = MAX_PROFILE_BATCH_BYTES

    class InputSerializer(serializers.Serializer):
        source = serializers.CharField(max_length=64, help_text="Key of the source sending the records.")
        records = entries_field(ProfileRecordSerializer,
                                help_text=f"At most {MAX_PROFILE_RECORDS} records of at most 32 KB each.")

    class OutputSerializer(serializers.Serializer):
        results = ProfileRecordResultSerializer(many=True, help_text="One per record, in input order.")

    @extend_schema(
        operation_id="profiles_batch", tags=["profiles"], parameters=[IDEMPOTENCY_HEADER],
        request=InputSerializer, responses={200: OutputSerializer, **problems(400, 409, 413, 422)},
        description=f"Scope `profiles:write`. At most {MAX_PROFILE_RECORDS} records and 2 MB, else 413 for the "
                    "whole request; a bad record is rejected alone (`status: rejected` with `errors`). A key bound "
                    "to a source may only send as that source.",
    )
    def post(self, request):
        data = validated(self.InputSerializer, request.data)
        batch_limit(data["records"], limit=MAX_PROFILE_RECORDS, noun="records")
        source = source_for_write(api_key=request.auth, source_key=data["source"])

        def run() -> StoredResponse:
            results = conflict_results_describe(source_key=source.key, records=data["records"],
                                                results=[r.as_dict() for r in profiles_ingest(
                                                    source=source, records=data["records"])])
            return StoredResponse(200, {"results": safe_batch_results(results)})

        return self.idempotent(run)


class ProfilesLookupApi(ApiView):
    required_scopes = {"POST": Scope.PROFILES_READ}
    replica_read_methods = frozenset({"POST"})  # lag-tolerant: a replica may serve (cdp.core.db_routing)

    class InputSerializer(serializers.Serializer):
        email = serializers.CharField(required=False)
        phone = serializers.CharField(required=False)
        crm_id = serializers.CharField(required=False)
        user_id = serializers.CharField(required=False)
        anonymous_id = serializers.CharField(required=False)
        source = serializers.CharField(required=False, max_length=64,
                                       help_text="Required with crm_id or user_id (they are scoped to a source).")
        country = serializers.RegexField(
            r"^[A-Za-z]{2}$", required=False,
            help_text="ISO 3166 alpha-2 code: how a phone without + is read (default: "
                      "TESSERA_DEFAULT_PHONE_REGION; with neither, only international numbers are understood).")

        def validate(self, attrs):
            kinds = [kind for kind in IDENTIFIER_KINDS if kind in attrs]
            if len(kinds) != 1:
                raise serializers.ValidationError("Name exactly one identifier.",
                                                  code=CdpErrorCode.EXACTLY_ONE_IDENTIFIER)
            if kinds[0] in SOURCE_SCOPED_KINDS and not attrs.get("source"):
                raise serializers.ValidationError({"source": "Required with crm_id or user_id."},
                                                  code=CdpErrorCode.SOURCE_REQUIRED)
            attrs["kind"] = kinds[0]
            return attrs

    class OutputSerializer(serializers.Serializer):
        results = ProfileSerializer(many=True)

    @extend_schema(
        operation_id="profiles_lookup", tags=["profiles"], request=InputSerializer,
        responses={200: OutputSerializer, **problems(400, 422)},
        description="Scope `profiles:read`. Find a profile by one identifier (a POST, so no personal data "
                    "appears in URLs). `results` is empty when nobody matches, and, for a key bound to a "
                    "source, when the person matched is not one that source contributed. A malformed identifier "
                    "(a phone that is no number in its region, an address without a domain) is a 400 naming it.",
    )
    def post(self, request):
        data = validated(self.InputSerializer, request.data)
        kind = data["kind"]
        if data.get("source"):
            source_known(data["source"])  # an unknown source is a 422, not an empty answer
        profiles = [profile_representation(view) for view in profiles_lookup(
            kind=kind, value=data[kind], source_key=data.get("source"),
            region=phone_region({"country": data.get("country")}), accessor=accessor_of(request, actor=self.actor()),
            visible=key_boundary(request.auth))]
        return Response({"results": profiles}, headers=NO_STORE)


class ProfileDetailApi(ApiView):
    replica_read_methods = frozenset({"GET"})  # lag-tolerant: a replica may serve (cdp.core.db_routing)
    required_scopes = {"GET": Scope.PROFILES_READ, "PATCH": Scope.PROFILES_WRITE}

    class PatchInputSerializer(serializers.Serializer):
        attributes = serializers.DictField(child=serializers.JSONField(allow_null=True), required=False)
        identifiers = serializers.DictField(child=serializers.CharField(allow_null=True), required=False,
                                            help_text="email, phone or anonymous_id to add to this profile.")

    class PatchOutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        status = serializers.ChoiceField(choices=["updated", "unchanged"])

    @extend_schema(
        operation_id="profiles_retrieve", tags=["profiles"], parameters=[ETAG],
        responses={200: ProfileOrMergedSerializer, **problems(404, 410)},
        description="Scope `profiles:read`. The unified profile with an `ETag` (its version). A merged-away id "
                    "answers `{id, merged_into}`; an erased one 410. A key bound to a source sees only people "
                    "that source contributed (a merged-away id counts as its survivor); anyone else is 404, "
                    "exactly as an unknown id.",
    )
    def get(self, request, profile_id):
        pid = uuid_or_404(profile_id, message="No profile has this id.")
        profile_visible_check(api_key=request.auth, profile_id=pid)
        view = profile_read(profile_id=pid, accessor=accessor_of(request, actor=self.actor()))
        profile = profile_representation(view)
        if "merged_into" in profile:
            return Response(profile)
        return Response(profile, headers={"ETag": etag(view["version"]), **NO_STORE})

    @extend_schema(
        operation_id="profiles_partial_update", tags=["profiles"], request=PatchInputSerializer,
        parameters=[IDEMPOTENCY_HEADER, ETAG, OpenApiParameter(
            "If-Match", str, OpenApiParameter.HEADER, required=True,
            description="The ETag of the version these corrections apply to.")],
        responses={200: PatchOutputSerializer, **problems(400, 404, 409, 410, 412, 413, 422, 428)},
        description="Scope `profiles:write`; not for keys bound to a source. Corrections are recorded as the "
                    "`operator` source (highest trust). Added identifiers attach to this profile; one held by "
                    "another profile answers 409 `identifier_conflict`. The new ETag is in the response headers.",
    )
    def patch(self, request, profile_id):
        pid = uuid_or_404(profile_id, message="No profile has this id.")
        unbound_only(api_key=request.auth)
        if_match = request.headers.get("If-Match")
        if not if_match:
            raise PreconditionRequired("Send If-Match with the profile's ETag.")
        data = validated(self.PatchInputSerializer, request.data)

        def run() -> StoredResponse:
            result = profile_correct(profile_id=pid, attributes=data.get("attributes", {}),
                                     identifiers=data.get("identifiers", {}),
                                     expected_versions=if_match_versions(if_match))
            return StoredResponse(200, {"id": result.profile_id, "status": result.status},
                                  {"ETag": etag(result.version)})

        return self.idempotent(run, preconditions=if_match)


def if_match_versions(header: str) -> set[int] | None:
    """Versions an If-Match header accepts; None for `*`. Unparsable tags match nothing.

    A weak tag is accepted too: proxies that compress responses (nginx's gzip) turn our
    strong ETag into a weak one, and a client echoing it must not be refused forever. The
    version alone decides, so this is no weaker than a strong comparison.
    """
    versions = set()
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            return None
        tag = tag.removeprefix("W/").strip('"')
        if tag.isdigit():
            versions.add(int(tag))
    return versions

