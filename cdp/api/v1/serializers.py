"""Serializers shared by several v1 endpoints (per-endpoint ones are nested in the views)."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from cdp.core.identifiers import IDENTIFIER_KINDS


class BatchErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="Dotted path inside the entry, e.g. `identifiers.email`.")
    code = serializers.CharField()
    message = serializers.CharField()


class IdentifiersSerializer(serializers.Serializer):
    """Identifiers of one person; crm_id and user_id are scoped to the source."""

    email = serializers.CharField(required=False, allow_null=True)
    phone = serializers.CharField(
        required=False, allow_null=True,
        help_text="E.164 (+33142680000), or national (01 42 68 00 00) read in the record's attributes.country "
                  "(ISO 3166 alpha-2), else in TESSERA_DEFAULT_PHONE_REGION; with neither, only + numbers are "
                  "understood. Stored as E.164.")
    crm_id = serializers.CharField(required=False, allow_null=True)
    anonymous_id = serializers.CharField(required=False, allow_null=True)
    user_id = serializers.CharField(required=False, allow_null=True)


class AttributeSerializer(serializers.Serializer):
    value = serializers.JSONField()
    source = serializers.CharField(help_text="Key of the source the surviving value came from.")
    observed_at = serializers.DateTimeField()


class ProfileSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    identifiers = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                        help_text=f"kind → values; kinds: {', '.join(IDENTIFIER_KINDS)}.")
    attributes = serializers.DictField(child=AttributeSerializer())
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class MergedProfileSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    merged_into = serializers.UUIDField(help_text="The profile this one was merged into; read that one.")


ProfileOrMergedSerializer = PolymorphicProxySerializer(
    component_name="ProfileOrMerged", serializers=[ProfileSerializer, MergedProfileSerializer],
    resource_type_field_name=None)


def profile_representation(view: dict) -> dict:
    """The contract's profile shape from the unified view (version goes to the ETag)."""
    if "merged_into" in view:
        return {"id": view["id"], "merged_into": view["merged_into"]}
    return {
        "id": view["id"],
        "identifiers": view["identifiers"],
        "attributes": {name: {"value": a["value"], "source": a["source"], "observed_at": a["observed_at"]}
                       for name, a in view["attributes"].items()},
        "created_at": view["created_at"],
        "updated_at": view["updated_at"],
    }


def entries_field(entry_serializer: type[serializers.Serializer], **kwargs) -> serializers.ListField:
    """A list whose entries are passed through unvalidated (the service validates each one
    and rejects a bad one alone), documented in the schema as a list of `entry_serializer`."""
    field_class = extend_schema_field(entry_serializer(many=True))(
        type(f"{entry_serializer.__name__}ListField", (serializers.ListField,), {}))
    return field_class(**kwargs)


def holds_nul(value) -> bool:
    """Whether a decoded JSON value holds a NUL character (in a key or a string) anywhere."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False
