"""Consent and data-subject request endpoints (CONTRACT.md), thin over consent's services."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from cdp.core.http.idempotency import StoredResponse
from cdp.core.http.permissions import key_boundary, profile_visible_check, source_for_write, unbound_only
from cdp.core.http.schema import IDEMPOTENCY_HEADER, problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, batch_limit, uuid_or_404, validated
from cdp.core.identifiers import SOURCE_SCOPED_KINDS
from cdp.core.timestamps import parse_timestamp
from consent.errors import ConsentError, ConsentErrorCode, ProfileUnknown
from consent.models import CHANNELS, Basis, DsrType
from consent.notices import notice_served, notice_text
from consent.purposes import PURPOSES
from consent.selectors import (
    consent_event_as_dict,
    consent_events_page,
    consent_export_stream,
    consent_receipt,
    consent_state_list,
    profile_canonical,
)
from consent.services.batch import consents_batch_record
from consent.services.consents import ConsentChange, consents_record
from consent.services.dsr import dsr_as_dict, dsr_get, dsr_submit
from consent.services.gpc import accessor_of

MAX_CONSENT_RECORDS = 1000
NO_STORE = {"Cache-Control": "no-store"}
BOUNDARY = ("A key bound to a source sees only people that source contributed; anyone else answers exactly as "
            "an unknown id.")


def profile_for_key(request, profile_id: str) -> UUID:
    """The consent work's profile id, after the key's boundary: a person the key may not
    see is unknown to it (the same 404 as an id nobody has)."""
    pid = uuid_or_404(profile_id, message="No profile has this id.")
    profile_visible_check(api_key=request.auth, profile_id=pid, unknown=ProfileUnknown("No profile has this id."))
    return profile_canonical(pid)


def parse_time(raw: str | None, name: str) -> datetime | None:
    if raw in (None, ""):
        return None
    value = parse_timestamp(raw)
    if value is None:
        raise ConsentError(f"{name} must be an RFC 3339 date-time (UTC without an offset) or a date.",
                           code=ConsentErrorCode.INVALID_RANGE)
    return value


class ConsentStateSerializer(serializers.Serializer):
    purpose = serializers.ChoiceField(choices=PURPOSES)
    granted = serializers.BooleanField(help_text="Whether the purpose is allowed now (basis, expiry and "
                                                 "re-consent taken into account).")
    notice_version = serializers.IntegerField()
    basis = serializers.ChoiceField(choices=["consent", "legitimate_interest", "contract"])
    status = serializers.ChoiceField(choices=["granted", "withdrawn", "expired", "reconsent_required",
                                              "not_recorded"])
    expires_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


class ConsentChangeSerializer(serializers.Serializer):
    purpose = serializers.ChoiceField(choices=PURPOSES)
    granted = serializers.BooleanField()
    notice_version = serializers.IntegerField(required=False, min_value=1,
                                              help_text="Default: the current version of the purpose's notice.")


class ProfileConsentsApi(ApiView):
    required_scopes = {"GET": Scope.CONSENT_READ, "PUT": Scope.CONSENT_WRITE}

    class InputSerializer(serializers.Serializer):
        channel = serializers.ChoiceField(choices=CHANNELS)
        consents = ConsentChangeSerializer(many=True, allow_empty=False)
        jurisdiction = serializers.CharField(required=False, max_length=16,
                                             help_text="Where the person is (e.g. GB, US-CA); chooses each "
                                                       "purpose's basis.")
        language = serializers.CharField(required=False, max_length=16, help_text="Language of the notice shown.")

    class OutputSerializer(serializers.Serializer):
        consents = ConsentStateSerializer(many=True)

    @extend_schema(operation_id="profile_consents_retrieve", tags=["consent"],
                   responses={200: OutputSerializer, **problems(404, 409, 410)},
                   description="Scope `consent:read`. Every purpose; never recorded means `granted: false` for "
                               "consent-based purposes. `Sec-GPC: 1` records an opt-out of `sale_sharing`. "
                               + BOUNDARY)
    def get(self, request, profile_id):
        pid = profile_for_key(request, profile_id)
        return Response({"consents": consent_state_list(profile_id=pid,
                                                        accessor=accessor_of(request, actor=self.actor()))})

    @extend_schema(operation_id="profile_consents_update", tags=["consent"], request=InputSerializer,
                   responses={200: OutputSerializer, **problems(400, 404, 409, 410)},
                   description="Scope `consent:write`. Changes only the listed purposes; each change is a ledger "
                               "event (IP address and user agent kept as keyed hashes). A withdrawal takes effect "
                               "at once and sends `consent.changed`. " + BOUNDARY)
    def put(self, request, profile_id):
        pid = profile_for_key(request, profile_id)
        data = validated(self.InputSerializer, request.data)
        accessor = accessor_of(request, actor=self.actor())
        consents_record(
            profile_id=pid, channel=data["channel"], actor=accessor.actor, evidence=accessor.evidence,
            jurisdiction=data.get("jurisdiction"), language=data.get("language"),
            changes=[ConsentChange(c["purpose"], c["granted"], c.get("notice_version")) for c in data["consents"]])
        # The state list honours the request's GPC signal, after the changes it came with.
        return Response({"consents": consent_state_list(profile_id=pid, accessor=accessor)})


class ConsentsBatchApi(ApiView):
    required_scopes = {"POST": Scope.CONSENT_WRITE}

    class InputSerializer(serializers.Serializer):
        channel = serializers.ChoiceField(choices=CHANNELS)
        source = serializers.CharField(required=False, max_length=64,
                                       help_text="Required when records name crm_id or user_id.")
        records = serializers.ListField(child=serializers.JSONField(), allow_empty=False,
                                        help_text=f"At most {MAX_CONSENT_RECORDS}: {{profile | profile_id, "
                                                  "purpose, granted, notice_version?, occurred_at?}.")

    class OutputSerializer(serializers.Serializer):
        results = serializers.ListField(child=serializers.DictField())

    @extend_schema(operation_id="consents_batch", tags=["consent"], parameters=[IDEMPOTENCY_HEADER],
                   request=InputSerializer, responses={200: OutputSerializer, **problems(400, 413, 422)},
                   description="Scope `consent:write`. From a CMP or CRM; statuses `recorded`, `unchanged` (also "
                               "for a decision older than the one in force), `unknown_profile`, `rejected`. For a key "
                               "bound to a source, a record naming a person that source did not contribute is "
                               "`unknown_profile`, as for a stranger.")
    def post(self, request):
        data = validated(self.InputSerializer, request.data)
        batch_limit(data["records"], limit=MAX_CONSENT_RECORDS, noun="records")
        source = data.get("source")
        if source:
            source_for_write(api_key=request.auth, source_key=source)
        actor, visible = self.actor(), key_boundary(request.auth)

        def run() -> StoredResponse:
            return StoredResponse(200, {"results": consents_batch_record(data["records"], channel=data["channel"],
                                                                         source=source, actor=actor,
                                                                         visible=visible)})

        return self.idempotent(run)


class ConsentEvidenceSerializer(serializers.Serializer):
    ip_hash = serializers.CharField(allow_null=True, help_text="Keyed hash of the IP address, never the address.")
    user_agent_hash = serializers.CharField(allow_null=True, help_text="Keyed hash of the user agent.")


class ConsentEventSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    profile_id = serializers.UUIDField()
    position = serializers.IntegerField(help_text="Position in the person's ledger chain.")
    purpose = serializers.ChoiceField(choices=PURPOSES)
    granted = serializers.BooleanField()
    notice_version = serializers.IntegerField()
    basis = serializers.ChoiceField(choices=Basis.values)
    channel = serializers.ChoiceField(choices=CHANNELS)
    actor = serializers.CharField(help_text="Who recorded it, e.g. `api_key:PREFIX`; never a person's identifier.")
    source = serializers.CharField(allow_null=True)
    jurisdiction = serializers.CharField(allow_null=True)
    language = serializers.CharField(allow_null=True)
    evidence = ConsentEvidenceSerializer()
    occurred_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()


class ConsentEventsListApi(ApiView):
    required_scopes = {"GET": Scope.AUDIT_READ}

    class OutputSerializer(serializers.Serializer):
        results = ConsentEventSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor`; null on the last page.")

    @extend_schema(operation_id="consent_events_list", tags=["consent"], parameters=[
        OpenApiParameter("profile", str, description="A profile id (a malformed one answers 404, like an "
                                                     "unknown id in a path)."),
        OpenApiParameter("purpose", str, enum=list(PURPOSES)),
        OpenApiParameter("since", str, description="ISO 8601; events recorded at or after."),
        OpenApiParameter("limit", int, description="Page size, 1-1000 (default 100)."),
        OpenApiParameter("cursor", str, description="`next_cursor` of the previous page.")],
        responses={200: OutputSerializer, **problems(400, 404)},
        description="Scope `audit:read`. The consent ledger, oldest first, cursor-paginated. A key bound to a "
                    "source sees only the events of people that source contributed. Each page is recorded in the "
                    "access log, one entry per person on it.")
    def get(self, request):
        params = request.query_params
        profile = uuid_or_404(params["profile"], message="No profile has this id.") if params.get("profile") else None
        page = consent_events_page(query_params=params, accessor=accessor_of(request, actor=self.actor()),
                                   profile_id=profile, purpose=params.get("purpose"),
                                   since=parse_time(params.get("since"), "since"), visible=key_boundary(request.auth))
        return Response({"results": [consent_event_as_dict(e) for e in page.rows], "next_cursor": page.next_cursor})


class IgnoreFormatNegotiation(DefaultContentNegotiation):
    """`?format=` is this endpoint's own parameter (csv or jsonl), not DRF's renderer switch."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ConsentExportApi(ApiView):
    required_scopes = {"GET": Scope.AUDIT_READ}
    replica_read_methods = frozenset({"GET"})  # lag-tolerant: a replica may serve (cdp.core.db_routing)
    content_negotiation_class = IgnoreFormatNegotiation

    @extend_schema(operation_id="consents_export", tags=["consent"], parameters=[
        OpenApiParameter("from", str, description="ISO 8601, inclusive."),
        OpenApiParameter("to", str, description="ISO 8601, exclusive."),
        OpenApiParameter("format", str, enum=["csv", "jsonl"], description="Default jsonl."),
        OpenApiParameter("kind", str, enum=["current", "history"], description="Default history.")],
        responses={(200, "text/csv"): str, (200, "application/jsonl"): str, **problems(400)},
        description="Scope `audit:read`; not for keys bound to a source (the export covers everyone: 403 "
                    "`source_not_allowed`). Streamed: the current state per (profile, purpose), or the full ledger.")
    def get(self, request):
        unbound_only(api_key=request.auth)
        params = request.query_params
        fmt, kind = params.get("format", "jsonl"), params.get("kind", "history")
        since, until = parse_time(params.get("from"), "from"), parse_time(params.get("to"), "to")
        lines = consent_export_stream(kind=kind, fmt=fmt, since=since, until=until,
                                      accessor=accessor_of(request, actor=self.actor()))
        response = StreamingHttpResponse(lines, content_type="text/csv" if fmt == "csv" else "application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="consents-{kind}.{fmt}"'
        return response


class ReceiptControllerSerializer(serializers.Serializer):
    piiController = serializers.CharField()
    onBehalf = serializers.BooleanField()
    contact = serializers.CharField()
    address = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()


class ReceiptPurposeSerializer(serializers.Serializer):
    purpose = serializers.CharField(help_text="The notice's title and text.")
    purposeCategory = serializers.ListField(child=serializers.CharField())
    consentType = serializers.CharField()
    piiCategory = serializers.ListField(child=serializers.CharField())
    primaryPurpose = serializers.BooleanField()
    termination = serializers.CharField()
    thirdPartyDisclosure = serializers.BooleanField()
    thirdPartyName = serializers.CharField(allow_null=True)


class ReceiptServiceSerializer(serializers.Serializer):
    service = serializers.CharField()
    purposes = ReceiptPurposeSerializer(many=True)


class ReceiptExtensionSerializer(serializers.Serializer):
    purpose = serializers.ChoiceField(choices=PURPOSES)
    granted = serializers.BooleanField()
    decision = serializers.ChoiceField(choices=["granted", "declined", "withdrawn"], help_text=(
        "declined: a refusal with no earlier grant for the purpose; withdrawn: a refusal after a grant."))
    statusNow = serializers.ChoiceField(choices=["expired", "reconsent_required"], allow_null=True, help_text=(
        "For a grant still in force that no longer allows: its lifetime ran out, or a material notice "
        "was published since."))
    noticeVersion = serializers.IntegerField()
    basis = serializers.ChoiceField(choices=Basis.values)
    channel = serializers.ChoiceField(choices=CHANNELS)
    recordedAt = serializers.DateTimeField()
    ledgerPosition = serializers.IntegerField()
    ledgerLink = serializers.CharField(help_text="The event's link in the HMAC chain.")


class ConsentReceiptSerializer(serializers.Serializer):
    """Kantara Initiative Consent Receipt v1.1, plus Tessera's `tessera` extension member."""

    version = serializers.CharField()
    jurisdiction = serializers.CharField()
    consentTimestamp = serializers.IntegerField(help_text="Unix seconds.")
    collectionMethod = serializers.CharField()
    consentReceiptID = serializers.UUIDField()
    publicKey = serializers.CharField(allow_null=True)
    language = serializers.CharField()
    piiPrincipalId = serializers.UUIDField(help_text="The pseudonymous profile id.")
    piiControllers = ReceiptControllerSerializer(many=True)
    policyUrl = serializers.CharField()
    services = ReceiptServiceSerializer(many=True)
    sensitive = serializers.BooleanField()
    spiCat = serializers.ListField(child=serializers.CharField())
    tessera = ReceiptExtensionSerializer()


class ConsentReceiptApi(ApiView):
    required_scopes = {"GET": Scope.CONSENT_READ}

    @extend_schema(operation_id="consent_receipt_retrieve", tags=["consent"],
                   responses={200: ConsentReceiptSerializer, **problems(404)},
                   description="Scope `consent:read`. The Kantara Consent Receipt v1.1 of one ledger event. "
                               + BOUNDARY)
    def get(self, request, profile_id, event_id):
        pid = uuid_or_404(profile_id, message="No profile has this id.")
        eid = uuid_or_404(event_id, message="This profile has no consent event with this id.")
        profile_visible_check(api_key=request.auth, profile_id=pid, unknown=ProfileUnknown(
            "This profile has no consent event with this id.", code=ConsentErrorCode.EVENT_UNKNOWN))
        accessor = accessor_of(request, actor=self.actor())
        return Response(consent_receipt(profile_id=pid, event_id=eid, accessor=accessor))


class NoticeSerializer(serializers.Serializer):
    purpose = serializers.ChoiceField(choices=PURPOSES)
    version = serializers.IntegerField()
    language = serializers.CharField(help_text="The language of the text returned (English when the one asked "
                                               "for has no translation).")
    title = serializers.CharField()
    body = serializers.CharField()


class NoticesApi(ApiView):
    required_scopes = {"GET": Scope.CONSENT_READ}

    class OutputSerializer(serializers.Serializer):
        results = NoticeSerializer(many=True)

    @extend_schema(operation_id="notices_list", tags=["consent"],
                   parameters=[OpenApiParameter("language", str, description="Default en.")],
                   responses={200: OutputSerializer, **problems()},
                   description="Scope `consent:read`. The current notice of every purpose, for a CMP to show.")
    def get(self, request):
        language = request.query_params.get("language", "en")
        return Response({"results": [notice_text(purpose=p, language=language) for p in PURPOSES]})


class NoticesServedApi(ApiView):
    required_scopes = {"POST": Scope.CONSENT_WRITE}

    class InputSerializer(serializers.Serializer):
        channel = serializers.ChoiceField(choices=CHANNELS)
        notices = serializers.ListField(child=serializers.DictField(), allow_empty=False, max_length=20,
                                        help_text="[{purpose, notice_version?, language?}]")

    @extend_schema(operation_id="profile_notices_served", tags=["consent"], request=InputSerializer,
                   responses={204: None, **problems(400, 404, 409, 410)},
                   description="Scope `consent:write`. Record that notices were shown to the person (served-"
                               "notice log). " + BOUNDARY)
    def post(self, request, profile_id):
        pid = profile_for_key(request, profile_id)
        data = validated(self.InputSerializer, request.data)
        with transaction.atomic():
            for entry in data["notices"]:
                version = entry.get("notice_version")
                notice_served(profile_id=pid, purpose=str(entry.get("purpose")),
                              version=version if isinstance(version, int) else None,
                              language=str(entry.get("language") or "en"), channel=data["channel"])
        return Response(status=204)


class DsrIdentifiersSerializer(serializers.Serializer):
    email = serializers.CharField(required=False)
    phone = serializers.CharField(required=False)
    crm_id = serializers.CharField(required=False)
    anonymous_id = serializers.CharField(required=False)
    user_id = serializers.CharField(required=False)
    country = serializers.RegexField(r"^[A-Za-z]{2}$", required=False,
                                     help_text="ISO 3166 alpha-2: how a phone without + is read.")


class DsrChangesSerializer(serializers.Serializer):
    attributes = serializers.DictField(child=serializers.JSONField(allow_null=True), required=False,
                                       help_text="New values; null removes an attribute.")
    identifiers = serializers.DictField(child=serializers.CharField(), required=False)


class DsrSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=DsrType.values)
    status = serializers.ChoiceField(choices=["received", "awaiting_approval", "in_progress", "completed",
                                              "rejected", "failed"])
    due_at = serializers.DateTimeField()
    reason = serializers.CharField(required=False)
    result = serializers.DictField(required=False)


class DsrCreateApi(ApiView):
    required_scopes = {"POST": Scope.DSR_WRITE}

    class InputSerializer(serializers.Serializer):
        type = serializers.ChoiceField(choices=DsrType.values)
        identifiers = DsrIdentifiersSerializer()
        source = serializers.CharField(required=False, max_length=64)
        changes = DsrChangesSerializer(required=False)

        def validate(self, attrs):
            identifiers = {k: v for k, v in attrs["identifiers"].items() if v}
            if not set(identifiers) - {"country"}:
                raise serializers.ValidationError({"identifiers": "Name at least one identifier."},
                                                  code=ConsentErrorCode.NO_USABLE_IDENTIFIER)
            if any(k in SOURCE_SCOPED_KINDS for k in identifiers) and not attrs.get("source"):
                raise serializers.ValidationError({"source": "Required with crm_id or user_id."},
                                                  code=ConsentErrorCode.SOURCE_REQUIRED)
            attrs["identifiers"] = identifiers
            return attrs

    @extend_schema(operation_id="dsr_create", tags=["dsr"], request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
                   responses={202: DsrSerializer, **problems(400, 422)},
                   description="Scope `dsr:write`. The key holder vouches for the requester's identity, so the "
                               "request runs at once unless an operator requires compliance approval for its type. "
                               "The request belongs to this key: no other key reads it. For a key bound to a source, "
                               "a person that source did not contribute is treated as an unknown person "
                               "(`result: {found: false}`, nothing exported, erased or changed).")
    def post(self, request):
        data = validated(self.InputSerializer, request.data)
        if data.get("source"):
            source_for_write(api_key=request.auth, source_key=data["source"])
        actor, visible = self.actor(), key_boundary(request.auth)

        def run() -> StoredResponse:
            dsr = dsr_submit(request_type=data["type"], channel="api", actor=actor, identifiers=data["identifiers"],
                             source=data.get("source"), changes=data.get("changes"),
                             filed_by_key=str(request.auth.id), visible=visible)
            return StoredResponse(202, {"id": str(dsr.id), "type": dsr.type, "status": dsr.status,
                                        "due_at": dsr.due_at.isoformat()})

        return self.idempotent(run)


class DsrDetailApi(ApiView):
    required_scopes = {"GET": Scope.DSR_READ}

    @extend_schema(operation_id="dsr_retrieve", tags=["dsr"], responses={200: DsrSerializer, **problems(404)},
                   description="Scope `dsr:read`. Only the key that filed the request reads it (404 for any other "
                               "key, as for an unknown id). Once completed, `result` holds the export for access and "
                               "portability, only with the scope `dsr:export` (without it, the status alone; each "
                               "read is logged), or a summary (erasure, rectification); `{found: false}` for an "
                               "unknown person.")
    def get(self, request, request_id):
        dsr = dsr_get(request_id=uuid_or_404(request_id, message="No request has this id."),
                      filed_by_key=str(request.auth.id))
        return Response(dsr_as_dict(dsr, reader=self.actor(), with_export=Scope.DSR_EXPORT in request.auth.scopes),
                        headers=NO_STORE)
