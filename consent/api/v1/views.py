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

from cdp.core.timestamps import parse_timestamp
from consent import registry
from consent.api.v1.base import (
    IDEMPOTENCY_HEADER,
    ApiView,
    Scope,
    StoredResponse,
    batch_limit,
    key_boundary,
    paginate,
    problems,
    profile_visible_check,
    source_for_write,
    unbound_only,
    uuid_or_404,
    validated,
)
from consent.errors import ConsentError, ConsentErrorCode, ProfileUnknown
from consent.events import operator_action_event
from consent.gpc import evidence_of, gpc_apply
from consent.models import CHANNELS, Basis, DsrType
from consent.notices import notice_served, notice_text, notice_versions
from consent.purposes import PURPOSES
from consent.selectors import (
    consent_event_as_dict,
    consent_events_query,
    consent_export_stream,
    consent_receipt,
    consent_state_list,
    profile_canonical,
)
from consent.services.consents import ConsentChange, consents_record, consents_record_many, notice_version_check
from consent.services.dsr import dsr_as_dict, dsr_get, dsr_submit

MAX_CONSENT_RECORDS = 1000
SCOPED_KINDS = ("crm_id", "user_id")
IDENTIFIER_KINDS = ("email", "phone", "crm_id", "anonymous_id", "user_id")
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
        gpc_apply(request, profile_id=pid, actor=self.actor())
        return Response({"consents": consent_state_list(profile_id=pid)})

    @extend_schema(operation_id="profile_consents_update", tags=["consent"], request=InputSerializer,
                   responses={200: OutputSerializer, **problems(400, 404, 409, 410)},
                   description="Scope `consent:write`. Changes only the listed purposes; each change is a ledger "
                               "event (IP address and user agent kept as keyed hashes). A withdrawal takes effect "
                               "at once and sends `consent.changed`. " + BOUNDARY)
    def put(self, request, profile_id):
        pid = profile_for_key(request, profile_id)
        data = validated(self.InputSerializer, request.data)
        with transaction.atomic():
            consents_record(
                profile_id=pid, channel=data["channel"], actor=self.actor(), evidence=evidence_of(request),
                jurisdiction=data.get("jurisdiction"), language=data.get("language"),
                changes=[ConsentChange(c["purpose"], c["granted"], c.get("notice_version")) for c in data["consents"]])
            gpc_apply(request, profile_id=pid, actor=self.actor())
        return Response({"consents": consent_state_list(profile_id=pid)})


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


def _error(field: str, code: str, message: str) -> dict:
    return {"field": field, "code": code, "message": message}


def consents_batch_record(records: list, *, channel: str, source: str | None, actor: str,
                          visible=None) -> list[dict]:
    """Check every record, then record the valid ones together (one transaction, heads and
    states read once); each result keeps its record's index. `visible` (the key's
    boundary) turns records naming people it leaves out into `unknown_profile`."""
    versions = notice_versions()
    results, valid = [], []
    for index, raw in enumerate(records):
        result, change = _batch_record_check(index, raw, source=source, versions=versions)
        results.append(result)
        if change is not None:
            valid.append((result, change))
    if valid and visible is not None:
        seen = {str(pid) for pid in visible({result["profile_id"] for result, _ in valid})}
        for result, _ in valid:
            if result["profile_id"] not in seen:
                result.update(status="unknown_profile", profile_id=None)
        valid = [(result, change) for result, change in valid if result["profile_id"] is not None]
    if valid:
        recorded = consents_record_many([(UUID(result["profile_id"]), [change]) for result, change in valid],
                                        channel=channel, actor=actor, source=source or "")
        for (result, _), [outcome] in zip(valid, recorded, strict=True):
            result.update(status=outcome.status, event_id=str(outcome.event.id) if outcome.event else None)
    return results


def _batch_record_check(index: int, raw, *, source: str | None, versions: dict) -> tuple[dict, ConsentChange | None]:
    """The record's result so far, and its change when it is valid and names a known person."""
    result = {"index": index, "status": "rejected", "profile_id": None, "event_id": None, "errors": []}
    if not isinstance(raw, dict):
        result["errors"] = [_error("record", "wrong_type", "A record must be an object.")]
        return result, None
    errors = []
    purpose, granted = raw.get("purpose"), raw.get("granted")
    if purpose not in PURPOSES:
        errors.append(_error("purpose", ConsentErrorCode.PURPOSE_UNKNOWN, "Unknown purpose."))
    if not isinstance(granted, bool):
        errors.append(_error("granted", "wrong_type", "granted must be true or false."))
    version = raw.get("notice_version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        errors.append(_error("notice_version", "wrong_type", "notice_version must be a whole number from 1."))
    occurred_at = None
    if raw.get("occurred_at") is not None:
        occurred_at = parse_timestamp(raw["occurred_at"])
        if occurred_at is None:
            errors.append(_error("occurred_at", "invalid_datetime",
                                 "Use an RFC 3339 date-time (UTC without an offset) or a date."))
    profile_id = _record_profile(raw, source, errors)
    change = None
    if not errors:
        change = ConsentChange(purpose, granted, version, occurred_at)
        try:
            notice_version_check(change, versions)
        except ConsentError as error:
            errors.append(_error("notice_version", error.code, error.message))
    if errors:
        result["errors"] = errors
        return result, None
    if profile_id is None:
        result["status"] = "unknown_profile"
        return result, None
    result["profile_id"] = str(profile_id)
    return result, change


def _record_profile(raw: dict, source: str | None, errors: list) -> UUID | None:
    if raw.get("profile_id") is not None:
        try:
            pid = UUID(str(raw["profile_id"]))
        except ValueError:
            errors.append(_error("profile_id", "invalid_uuid", "profile_id must be a UUID."))
            return None
        try:
            return profile_canonical(pid, follow_merge=True)
        except ConsentError:
            return None
        except Exception as error:  # NotFound / Gone from cdp.core
            if getattr(error, "status", None) in (404, 410):
                return None
            raise
    identifiers = raw.get("profile")
    if not isinstance(identifiers, dict) or not identifiers:
        errors.append(_error("profile", "required", "Name the person with profile or profile_id."))
        return None
    unknown = [k for k in identifiers if k not in IDENTIFIER_KINDS]
    if unknown:
        errors.append(_error("profile", "unknown_identifier", "Unknown identifier kind."))
        return None
    if any(k in SCOPED_KINDS for k in identifiers) and not source:
        errors.append(_error("source", "source_required", "crm_id and user_id need source."))
        return None
    try:
        found = [pid for ids in registry.run(registry.RESOLVE, identifiers=identifiers, source=source) for pid in ids]
    except ValueError as error:
        errors.append(_error("profile", str(error) or "invalid_identifier", "An identifier is not valid."))
        return None
    return found[0] if found else None


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
                    "source sees only the events of people that source contributed (so a page may hold fewer "
                    "than `limit`; follow `next_cursor`).")
    def get(self, request):
        params = request.query_params
        profile = uuid_or_404(params["profile"], message="No profile has this id.") if params.get("profile") else None
        visible = key_boundary(request.auth)
        purpose = params.get("purpose")
        if purpose and purpose not in PURPOSES:
            raise ConsentError("Unknown purpose.", code=ConsentErrorCode.PURPOSE_UNKNOWN)
        events = consent_events_query(profile_id=profile, purpose=purpose, since=parse_time(params.get("since"),
                                                                                            "since"))
        page = paginate(events, query_params=params, ordering=("recorded_at", "id"))
        rows = page.rows
        if visible is not None and rows:
            seen = visible({e.profile_id for e in rows})
            rows = [e for e in rows if e.profile_id in seen]
        return Response({"results": [consent_event_as_dict(e) for e in rows], "next_cursor": page.next_cursor})


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
        lines = consent_export_stream(kind=kind, fmt=fmt, since=since, until=until)
        operator_action_event(actor=self.actor(), action="consent_export", detail={"kind": kind, "format": fmt})
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
        return Response(consent_receipt(profile_id=pid, event_id=eid))


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
            if not identifiers:
                raise serializers.ValidationError({"identifiers": "Name at least one identifier."},
                                                  code="no_usable_identifier")
            if any(k in SCOPED_KINDS for k in identifiers) and not attrs.get("source"):
                raise serializers.ValidationError({"source": "Required with crm_id or user_id."},
                                                  code="source_required")
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
