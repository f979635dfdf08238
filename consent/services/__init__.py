"""Services of the consent app: consent changes, data-subject requests, retention.

Re-exported here so callers keep importing `consent.services.consent_set` and friends.
"""

from consent.services.consents import (  # noqa: F401
    ConsentChange,
    Evidence,
    consent_gpc_signal,
    consent_profiles_merged,
    consent_profiles_merged_many,
    consent_set,
    consents_record,
    consents_record_many,
)
