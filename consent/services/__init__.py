"""Services of the consent app: consent changes, data-subject requests, retention.

Re-exported here so callers keep importing `consent.services.consent_set` and friends,
with the values those take and return (channels, request types and statuses).
"""

from consent.models import Channel, DsrStatus, DsrType, VerificationStatus  # noqa: F401
from consent.notices import notice_served, notices_served_anew  # noqa: F401
from consent.services.consents import (  # noqa: F401
    ConsentChange,
    Evidence,
    consent_gpc_signal,
    consent_profiles_merged_many,
    consent_set,
    consents_record,
    consents_record_many,
)
