"""The access log's write side for other apps (cdp.api.access calls this)."""

from consent.events import operator_action_event, personal_data_read_event  # noqa: F401
