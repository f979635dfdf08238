"""Purposes' legal bases per jurisdiction, versioned notices and the served-notice log.

Every purpose is consent-based until a compliance officer says otherwise for a jurisdiction.
Each purpose has notice version 1 out of the box (created on first use, so a flushed
database works too). Reads and writes codes, versions and pseudonymous ids only.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from consent.errors import ConsentError, ConsentErrorCode
from consent.events import NOTICE_PUBLISHED, PURPOSE_BASIS_SET, configuration_changed_event
from consent.ledger import head_jurisdiction_set, heads_lock, policy_config_record
from consent.models import (
    DEFAULT_JURISDICTION,
    Basis,
    Channel,
    NoticeText,
    NoticeVersion,
    PurposeBasis,
    ServedNotice,
    Subject,
)
from consent.purposes import PURPOSES

JURISDICTION = re.compile(r"^(\*|[A-Z]{2}(-[A-Z0-9]{1,3})?|EU|EEA)$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

DEFAULT_TEXTS = {
    "analytics": ("Analytics", "We analyse how you use our services to improve them and to group customers "
                               "with similar interests."),
    "personalization": ("Personalized recommendations", "We use your purchases and views to recommend "
                                                          "items, and tell you why each was recommended."),
    "marketing": ("Marketing", "We may contact you with offers and include you in marketing campaigns."),
    "enrichment": ("Data from partners", "We may add information about you that partners hold to your profile."),
    "sale_sharing": ("Sale and sharing", "We may share or sell information about you to third parties."),
}


def purpose_check(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise ConsentError("Unknown purpose; use one of " + ", ".join(PURPOSES) + ".",
                           code=ConsentErrorCode.PURPOSE_UNKNOWN)
    return purpose


def jurisdiction_check(jurisdiction: str | None) -> str:
    text = (jurisdiction or DEFAULT_JURISDICTION).strip().upper()
    if not JURISDICTION.match(text):
        raise ConsentError("A jurisdiction is * or a country code such as GB or US-CA.",
                           code=ConsentErrorCode.JURISDICTION_INVALID)
    return text


def language_check(language: str | None) -> str:
    text = (language or "en").strip()
    return text if LANGUAGE.match(text) else "en"


# --- notices ----------------------------------------------------------------------------------


def notices_ensure() -> None:
    """Version 1 of every purpose's notice, in English, when none exists yet."""
    have = set(NoticeVersion.objects.values_list("purpose", flat=True).distinct())
    for purpose in PURPOSES:
        if purpose in have:
            continue
        try:
            with transaction.atomic():
                notice = NoticeVersion.objects.create(purpose=purpose, version=1)
                title, body = DEFAULT_TEXTS[purpose]
                NoticeText.objects.create(notice=notice, language="en", title=title, body=body)
                policy_config_record(actor="system", action="notice_published")
        except IntegrityError:
            pass  # created concurrently


def notice_versions() -> dict[str, dict]:
    """Per purpose: current version, lowest version still valid (re-consent), lifetimes."""
    rows = list(NoticeVersion.objects.values_list("purpose", "version", "material", "lifetime_days"))
    if {r[0] for r in rows} != set(PURPOSES):
        notices_ensure()
        rows = list(NoticeVersion.objects.values_list("purpose", "version", "material", "lifetime_days"))
    info = {p: {"current": 0, "minimum": 1, "lifetimes": {}} for p in PURPOSES}
    for purpose, version, _, lifetime in rows:
        entry = info[purpose]
        entry["current"] = max(entry["current"], version)
        entry["lifetimes"][version] = lifetime
    for purpose, entry in info.items():
        entry["minimum"] = notice_minimum((version, material) for p, version, material, _ in rows if p == purpose)
    return info


def notice_minimum(versions) -> int:
    """The lowest notice version whose grants still count, from (version, material) pairs:
    a material version makes every grant under an earlier one need re-consent."""
    return max([1, *(version for version, material in versions if material)])


def notice_current(purpose: str) -> int:
    return notice_versions()[purpose_check(purpose)]["current"]


def notice_expiry(purpose: str, version: int, occurred_at, *, versions: dict | None = None):
    lifetime = (versions or notice_versions())[purpose]["lifetimes"].get(version)
    return occurred_at + timedelta(days=lifetime) if lifetime else None


@transaction.atomic
def notice_publish(*, purpose: str, texts: dict[str, tuple[str, str]], material: bool = False,
                   lifetime_days: int | None = None, actor: str) -> NoticeVersion:
    """A new notice version; `texts` maps language → (title, body). Logged as an operator action."""
    purpose_check(purpose)
    if not texts:
        raise ConsentError("A notice needs a text in at least one language.", code="notice_text_required")
    notice = NoticeVersion.objects.create(purpose=purpose, version=notice_next_version(purpose), material=material,
                                          lifetime_days=lifetime_days)
    for language, (title, body) in texts.items():
        NoticeText.objects.create(notice=notice, language=language_check(language), title=title, body=body)
    notice_published_event(notice=notice, actor=actor)
    policy_config_record(actor=actor, action="notice_published")
    return notice


def notice_next_version(purpose: str) -> int:
    """The number of a purpose's next version; locks the latest, so call it in the publishing transaction."""
    notices_ensure()
    latest = NoticeVersion.objects.select_for_update().filter(purpose=purpose).order_by("-version").first()
    return latest.version + 1


def notice_as_dict(notice: NoticeVersion | None) -> dict | None:
    if notice is None:
        return None
    texts = {t.language: {"title": t.title, "body": t.body} for t in notice.texts.order_by("language")}
    return {"purpose": notice.purpose, "version": notice.version, "material": notice.material,
            "lifetime_days": notice.lifetime_days, "texts": texts}


def notice_published_event(*, notice: NoticeVersion, actor: str) -> None:
    """The access-log entry for a new version, its texts saved: before is the version it follows.

    Written by notice_publish and by the admin once the admin has saved the texts."""
    previous = NoticeVersion.objects.filter(purpose=notice.purpose, version__lt=notice.version).order_by(
        "-version").first()
    configuration_changed_event(actor=actor, action=NOTICE_PUBLISHED, before=notice_as_dict(previous),
                                after=notice_as_dict(notice))


def notice_text(*, purpose: str, version: int | None = None, language: str = "en") -> dict:
    """The notice's text in the language asked for, else English, else any translation."""
    purpose_check(purpose)
    version = version or notice_current(purpose)
    texts = {t.language: t for t in NoticeText.objects.filter(notice__purpose=purpose, notice__version=version)}
    chosen = texts.get(language) or texts.get(language.split("-")[0]) or texts.get("en") or next(
        iter(texts.values()), None)
    if chosen is None:
        title, body = DEFAULT_TEXTS[purpose]
        return {"purpose": purpose, "version": version, "language": "en", "title": title, "body": body}
    return {"purpose": purpose, "version": version, "language": chosen.language, "title": chosen.title,
            "body": chosen.body}


def notice_served(*, profile_id, purpose: str, version: int | None = None, language: str = "en",
                  channel: str = Channel.PREFERENCE_CENTER) -> ServedNotice:
    """Record that a notice was shown to a person (the served-notice log)."""
    purpose_check(purpose)
    return ServedNotice.objects.create(profile_id=profile_id, purpose=purpose,
                                       notice_version=version or notice_current(purpose),
                                       language=language_check(language), channel=channel,
                                       served_at=timezone.now())


def notices_served_anew(*, profile_id, notices: list[dict], channel: str = Channel.PREFERENCE_CENTER) -> int:
    """Record the notices a page shows a person, each only the first time that version (in that
    language, on that channel) is shown to them: the served-notice log proves what was shown,
    and a page view that shows the same text again adds nothing to it. `notices`: dicts with
    purpose, version and language (notice_text's shape). Returns how many were recorded."""
    shown = {(n["purpose"], n["version"], language_check(n["language"])) for n in notices}
    for purpose, _, _ in shown:
        purpose_check(purpose)
    known = set(ServedNotice.objects.filter(profile_id=profile_id, channel=channel,
                                            purpose__in={p for p, _, _ in shown})
                .values_list("purpose", "notice_version", "language"))
    now = timezone.now()
    new = [ServedNotice(profile_id=profile_id, purpose=purpose, notice_version=version, language=language,
                        channel=channel, served_at=now) for purpose, version, language in sorted(shown - known)]
    ServedNotice.objects.bulk_create(new)
    return len(new)


# --- legal bases ------------------------------------------------------------------------------


def bases_table() -> dict[str, dict[str, str]]:
    """purpose → {jurisdiction → basis}; `*` present for every purpose."""
    table = {p: {DEFAULT_JURISDICTION: Basis.CONSENT.value} for p in PURPOSES}
    for purpose, jurisdiction, basis in PurposeBasis.objects.values_list("purpose", "jurisdiction", "basis"):
        table.setdefault(purpose, {})[jurisdiction] = basis
    return table


def purpose_bases(rows) -> dict[str, str]:
    """One purpose's row of `bases_table` from its (jurisdiction, basis) pairs."""
    return {DEFAULT_JURISDICTION: Basis.CONSENT.value, **dict(rows)}


def basis_for(purpose: str, jurisdiction: str | None, *, table: dict | None = None) -> str:
    bases = (table or bases_table())[purpose]
    if jurisdiction and jurisdiction in bases:
        return bases[jurisdiction]
    if jurisdiction and "-" in jurisdiction and jurisdiction.split("-")[0] in bases:
        return bases[jurisdiction.split("-")[0]]  # US-CA falls back to US
    return bases[DEFAULT_JURISDICTION]


@transaction.atomic
def purpose_basis_as_dict(row: PurposeBasis | None) -> dict | None:
    return None if row is None else {"purpose": row.purpose, "jurisdiction": row.jurisdiction, "basis": row.basis}


@transaction.atomic
def purpose_basis_set(*, purpose: str, jurisdiction: str = DEFAULT_JURISDICTION, basis: str,
                      actor: str) -> PurposeBasis:
    """A compliance officer sets a purpose's legal basis in a jurisdiction; logged with before and after."""
    purpose_check(purpose)
    jurisdiction = jurisdiction_check(jurisdiction)
    if basis not in Basis.values:
        raise ConsentError("basis must be consent, legitimate_interest or contract.",
                           code=ConsentErrorCode.BASIS_UNKNOWN)
    before = purpose_basis_as_dict(
        PurposeBasis.objects.select_for_update().filter(purpose=purpose, jurisdiction=jurisdiction).first())
    row, _ = PurposeBasis.objects.update_or_create(purpose=purpose, jurisdiction=jurisdiction,
                                                   defaults={"basis": basis})
    configuration_changed_event(actor=actor, action=PURPOSE_BASIS_SET, before=before,
                                after=purpose_basis_as_dict(row))
    policy_config_record(actor=actor, action="purpose_basis_set")
    return row


def subject_jurisdictions(profile_ids) -> dict:
    return dict(Subject.objects.filter(profile_id__in=list(profile_ids)).values_list("profile_id", "jurisdiction"))


@transaction.atomic
def subject_jurisdiction_set(*, profile_id, jurisdiction: str, head=None) -> bool:
    """Where a person is, for choosing the basis of each purpose (e.g. from their country).

    Kept on the subject's MAC'd chain head too (locked here, or `head` already locked by
    the caller), which the verifier compares with the Subject row. False: unchanged.
    """
    jurisdiction = jurisdiction_check(jurisdiction)
    if head is None:
        [head] = heads_lock([profile_id]).values()
    return head_jurisdiction_set(head, jurisdiction)
