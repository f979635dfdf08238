"""The words the console shows for the codes the records keep.

Audit rows, ledger events and request outcomes store stable codes (`sale_sharing`,
`operator_action`, `staff:1`, `{"found": True, "kinds": []}`); the people who read the
console get words. One place maps them, so every page says the same thing, and an unknown
code still reads as words ("some_new_action" → "Some new action"), never as a raw key.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from consent.selectors import (
    ACCESS_KIND_NAMES,
    CHANNEL_NAMES,
    DSR_STATUS_NAMES,
    DSR_TYPE_NAMES,
    PURPOSE_TITLES,
)

# What a person's consent to one purpose is now, or what one ledger event did.
STATE_LABELS = {
    "granted": "Granted",
    "declined": "Declined (refused when first asked)",
    "withdrawn": "Withdrawn (after a grant)",
    "expired": "Expired",
    "reconsent_required": "Re-consent required (the notice changed)",
    "not_recorded": "Never asked",
}
STATE_BADGES = {"granted": "ok", "declined": "neutral", "withdrawn": "bad", "expired": "warn",
                "reconsent_required": "warn", "not_recorded": "neutral"}
BASIS_LABELS = {"consent": "Consent", "legitimate_interest": "Legitimate interest", "contract": "Contract"}
KIND_LABELS = {**ACCESS_KIND_NAMES, "read": "Read of personal data", "operator_action": "Staff or system action"}

# Access-log purposes (why data was read) and operator actions (what was done).
ACTION_LABELS = {
    "subject_lookup": "Looked the person up in the console",
    "consent_export": "Exported the consent ledger",
    "consent_read": "Read consent decisions",
    "consent_ledger_read": "Read the consent ledger",
    "consent_receipt": "Read a consent receipt",
    "consent_receipts": "Read the consent receipts",
    "dsr_approved": "Approved a data-subject request",
    "dsr_rejected": "Rejected a data-subject request",
    "dsr_extended": "Extended a data-subject request",
    "dsr_access": "Read an access request's export",
    "dsr_portability": "Read a portability request's export",
    "ledger_verified": "Verified the consent ledger",
    "ledger_checkpoint_taken": "Took a ledger checkpoint",
    "evidence_bundle_export": "Downloaded an evidence bundle",
    "access_log_read": "Read the organisation's access log",
    "privacy_budget_changed": "Changed a privacy-budget limit",
    "retention_purge": "Purged data past its retention",
    "purpose_basis_set": "Set a legal basis",
    "notice_published": "Published a notice",
    "retention_rule_set": "Set a retention rule",
    "dsr_approval_rule_set": "Set the approval of data-subject requests",
    "api_key.created": "Created an API key",
    "api_key.revoked": "Revoked an API key",
    "ingestion_error.viewed": "Viewed an ingestion error",
    "merge.undone": "Undid a profile merge",
    "merge_conflict_approved": "Kept two profiles apart",
    "merge_conflict_applied": "Applied a held profile link",
    "api_profile_read": "Read a profile through the API",
    "api_profile_lookup": "Looked a profile up through the API",
    "api_events_read": "Read events through the API",
    "analytics": "Analytics",
    "personalization": "Personalized recommendations",
    "marketing": "Marketing",
    "predictions": "Churn and value predictions",
}
DSR_AUDIT_LABELS = {"received": "Received", "approved": "Approved", "rejected": "Rejected", "extended": "Extended",
                    "started": "Started", "completed": "Completed", "failed": "Failed"}
IDENTIFIER_LABELS = {"email": "e-mail address", "phone": "phone number", "crm_id": "CRM id",
                     "user_id": "user id", "anonymous_id": "device id", "profile_id": "profile id"}
DSR_PLAIN = {
    "access": "The person asks for a copy of the personal data held about them.",
    "portability": "The person asks for their data in a machine-readable file they can take elsewhere.",
    "erasure": "The person asks for the personal data held about them to be erased.",
    "rectification": "The person asks for personal data held about them to be corrected.",
}
CHANNEL_LABELS = CHANNEL_NAMES | {"console": "Compliance console", "email": "E-mail"}
LIMIT_LABELS = {"epsilon_limit": "Lifetime ε cap", "period_epsilon_limit": "ε a month may spend (pace)",
                "delta_limit": "Lifetime δ cap"}
STATISTIC_LABELS = {"consent_rates": "Consent rates per purpose", "predictions": "Churn risk and expected value",
                    "segment_definition": "Segment definitions (centroids, RFM cut points)",
                    "segment_sizes": "Segment sizes", "segment_total_spend": "Total spend per segment",
                    "segment_average_spend": "Average spend per segment (derived)",
                    "campaign_counts": "Campaign participants and conversions", "campaign_value": "Campaign value"}
# What went wrong in a pipeline run (the run's errors keep the code; operators read words).
PIPELINE_PROBLEM_LABELS = {
    "recommender_unavailable": "The recommender could not run",
    "task_failed": "A task failed after its retries",
    "stage_failed": "The stage failed",
    "not_picked_up": "No worker picked the run up",
    "no_purchases": "No purchases to predict from",
    "not_enough_data": "Not enough data",
    "no_interactions": "No interactions to learn from",
    "segment_definition_reused": "The previous segment definitions were reused",
    "privacy_budget_exceeded": "The privacy budget could not pay for a release",
}
TRIGGER_LABELS = {"command": "An operator (run_pipeline)", "schedule": "The nightly schedule",
                  "beat": "The nightly schedule", "api": "The API", "admin": "The admin"}
FIELD_LABELS = {"consent_events": "consent decisions", "consent_receipt": "a consent receipt",
                "consent_receipts": "consent receipts", "consents": "consent decisions"}


def words(code) -> str:
    """Any code as words: "some_new_action" → "Some new action"."""
    text = str(code or "").replace("_", " ").replace(".", " ").strip()
    return text[:1].upper() + text[1:] if text else "—"


def purpose_label(purpose: str) -> str:
    return PURPOSE_TITLES.get(purpose) or words(purpose)


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, words(state))


def action_label(code: str) -> str:
    return ACTION_LABELS.get(code) or (purpose_label(code) if code in PURPOSE_TITLES else words(code))


def problem_label(code: str) -> str:
    return PIPELINE_PROBLEM_LABELS.get(code, words(code))


def trigger_label(code: str) -> str:
    return TRIGGER_LABELS.get(code, words(code))


def stage_label(code: str) -> str:
    from personalization.models import Stage  # the pipeline's own names of its stages

    return dict(Stage.choices).get(code) or words(code)


def channel_label(code: str) -> str:
    return CHANNEL_LABELS.get(code, words(code))


def kind_label(code: str) -> str:
    return KIND_LABELS.get(code, words(code))


def identifier_label(code: str) -> str:
    return IDENTIFIER_LABELS.get(code, words(code))


def dsr_type_label(code: str) -> str:
    return DSR_TYPE_NAMES.get(code, words(code))


def dsr_status_label(code: str) -> str:
    return DSR_STATUS_NAMES.get(code, words(code))


def staff_names() -> dict[str, str]:
    return {str(pk): name for pk, name in get_user_model().objects.values_list("pk", "username")}


def actor_label(actor: str, names: dict[str, str] | None = None) -> str:
    """`staff:3` → "officer (staff)"; `data_subject` → "The person"; `api_key:abc` → "API key abc"."""
    text = str(actor or "")
    if text.startswith("staff:"):
        key = text.removeprefix("staff:")
        names = staff_names() if names is None else names
        return f"{names[key]} (staff)" if key in names else f"Staff member #{key} (no longer a user)"
    if text.startswith("api_key:"):
        return f"API key {text.removeprefix('api_key:')}"
    fixed = {"data_subject": "The person", "system": "Tessera (automatic)", "unknown": "Unknown",
             "": "Unknown", "gpc": "Global Privacy Control signal"}
    return fixed.get(text, words(text))


def setting_value(name: str, value):
    """A configuration setting's value as words: purposes, bases and request types by their
    names, yes or no, lists joined; text (a notice's wording) as it was written."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | tuple):
        return ", ".join(str(setting_value(name, v)) for v in value) or "none"
    field = str(name).split()[-1]
    if field == "purpose":
        return purpose_label(value)
    if field == "basis":
        return BASIS_LABELS.get(value, words(value))
    if field in ("type", "request_type"):
        return dsr_type_label(value)
    if field == "channel":
        return channel_label(value)
    return value


def outcome_lines(detail: dict | None) -> list[str]:
    """A request's outcome or audit detail as sentences, not program output."""
    lines = []
    for key, value in (detail or {}).items():
        if key == "found":
            lines.append("The person was found." if value else "Nobody matched what the request named.")
        elif key == "kinds":
            lines.append(f"Named by: {', '.join(identifier_label(k) for k in value)}." if value
                         else "Named by the signed-in person (no identifier given).")
        elif key == "sections":
            lines.append(f"Included in the export: {', '.join(words(s).lower() for s in value)}." if value
                         else "Nothing to export.")
        elif key == "channel":
            lines.append(f"Through: {channel_label(value)}.")
        elif key == "reason":
            lines.append(f"Reason: {value}")
        elif key == "days":
            lines.append(f"By {value} days.")
        elif key == "error":
            lines.append(f"Processing failed ({words(value)}).")
        elif key == "expired":
            lines.append("The export has since been shredded (retention or a later erasure).")
        elif key == "consent_ledger":
            lines.append("The consent ledger is kept, as proof of what the person decided.")
        elif key == "profile_id":
            continue  # shown as the subject link
        elif isinstance(value, bool):
            lines.append(f"{words(key)}: {'yes' if value else 'no'}.")
        elif isinstance(value, int):
            lines.append(f"{words(key)}: {value}.")
        elif isinstance(value, list | tuple):
            lines.append(f"{words(key)}: {', '.join(words(v).lower() for v in value) or 'none'}.")
        elif isinstance(value, dict):
            lines.append(f"{words(key)}: " + "; ".join(f"{words(k).lower()} {v}" for k, v in value.items()) + ".")
        else:
            lines.append(f"{words(key)}: {words(value).lower()}.")
    return lines
