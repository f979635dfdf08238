"""Creating sources and checking their Segment write keys (stored hashed)."""

from __future__ import annotations

import hashlib
import re
import secrets

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from cdp.core.errors import ApplicationError, Conflict
from cdp.core.timestamps import time_zone_validate
from cdp.errors import CdpErrorCode
from cdp.models import Assurance, AttributeValue, Event, Identity, Source, SourceKind, SourceRecord
from cdp.services import identity_rules

SOURCE_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def write_key_hash(write_key: str) -> str:
    return hashlib.sha256(write_key.encode()).hexdigest()


@transaction.atomic
def source_create(*, key: str, name: str, kind: str, trust: int,
                  assurance: str = Assurance.ASSERTED, time_zone: str = "",
                  write_key: str | None = None) -> tuple[Source, str]:
    """A new source and its write key (returned once, stored only as a hash).

    `assurance` says how far its identifiers are trusted (cdp.services.identity_rules):
    `client` for a source whose write key is used from browsers or apps. `time_zone` (IANA
    name): how its timestamps without an offset are read (empty: UTC). `write_key`: only the
    development demo's fixed keys (cdp.demo.loader); otherwise a random one.
    """
    if not SOURCE_KEY.match(key or ""):
        raise ApplicationError("A source key is 1-64 lower-case letters, digits, '-' or '_'.",
                               code=CdpErrorCode.INVALID_SOURCE_KEY)
    if kind not in SourceKind.values:
        raise ApplicationError("kind must be first_party or third_party.", code=CdpErrorCode.INVALID_KIND)
    if assurance not in Assurance.values:
        raise ApplicationError("assurance must be verified, asserted or client.", code=CdpErrorCode.INVALID_ASSURANCE)
    time_zone_check(time_zone)
    if Source.objects.filter(key=key).exists():
        raise Conflict(f"A source with key '{key}' already exists.", code=CdpErrorCode.SOURCE_EXISTS)
    write_key = write_key or "wk_" + secrets.token_urlsafe(24)
    try:
        source = Source.objects.create(key=key, name=name or key, kind=kind, trust=int(trust), assurance=assurance,
                                       time_zone=time_zone, write_key_hash=write_key_hash(write_key),
                                       write_key_prefix=write_key[:8])
    except IntegrityError:
        raise Conflict(f"A source with key '{key}' already exists.", code=CdpErrorCode.SOURCE_EXISTS) from None
    return source, write_key


def time_zone_check(time_zone: str) -> None:
    try:
        time_zone_validate(time_zone)
    except ValidationError as exc:
        raise ApplicationError(exc.messages[0], code=CdpErrorCode.INVALID_TIME_ZONE) from None


@transaction.atomic
def source_assurance_change(*, source: Source, assurance: str) -> int:
    """Set a source's assurance; returns how many identities lost provenance.

    Lowering it (say, a write key found in a web page) lowers the identities it asserted
    to match, since what it said before is no more trustworthy than what it says now.
    Raising it raises only what it asserts from now on.
    """
    if assurance not in Assurance.values:
        raise ApplicationError("assurance must be verified, asserted or client.", code=CdpErrorCode.INVALID_ASSURANCE)
    Source.objects.filter(pk=source.pk).update(assurance=assurance)
    source.assurance = assurance
    stronger = [level for level in Assurance.values if identity_rules.outranks(level, assurance)]
    return Identity.objects.filter(source=source, assurance__in=stronger).update(assurance=assurance)


def source_by_write_key(write_key: str) -> Source | None:
    return Source.objects.filter(write_key_hash=write_key_hash(write_key)).first()


def source_get(key: str) -> Source:
    source = Source.objects.filter(key=key).first()
    if source is None:
        raise ApplicationError(f"No source has the key '{key}'.", code=CdpErrorCode.UNKNOWN_SOURCE, status=422)
    return source


def source_holds_data(source: Source) -> bool:
    """Whether anything was ingested from this source: then it cannot be deleted.

    Cheap for a source with data, as a check before deleting must be: every record of a
    source has a current version (found through record_one_current_version), and the
    first event or attribute row found ends the other two looks.
    """
    return (SourceRecord.objects.filter(source=source, is_current=True).exists()
            or Event.objects.filter(source=source).exists()
            or AttributeValue.objects.filter(source=source).exists())
