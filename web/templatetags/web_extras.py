"""Template helpers for the pages."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.dateparse import parse_datetime

from web import labels
from web.timezones import ZONES

register = template.Library()


@register.filter
def pairs(mapping) -> list[tuple]:
    """A dict's (key, value) pairs; `d.items` in a template finds a key named "items" first."""
    return list(mapping.items()) if isinstance(mapping, dict) else []


@register.filter
def messages_at(messages, place: str) -> list:
    """The messages to show at one place of the page ("" for the top: untagged ones)."""
    return [m for m in messages or [] if (m.extra_tags or "") == place]


@register.simple_tag(takes_context=True)
def actor(context, value) -> str:
    """An audit actor for people: `staff:<id>` shows the staff member's user name, the
    other actors their words (web.labels.actor_label).

    Audit rows name staff by id (user names can be personal); the console resolves them
    for its readers, with one query per page.
    """
    text = str(value or "")
    names = None
    if text.startswith("staff:"):
        names = context.render_context.get("web_staff_names")
        if names is None:
            names = labels.staff_names()
            context.render_context["web_staff_names"] = names
    return labels.actor_label(text, names)


@register.filter
def when(value, style: str = "") -> str:
    """A time in the viewer's zone with the zone named: "7 Dec 2026, 23:17 CET".

    Takes datetimes and ISO strings (audit trails keep ISO text); `style` "seconds" adds
    seconds, "day" gives the day only (still named in its zone, days start at midnight there).
    """
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        value = parse_datetime(value)
        if value is None:
            return "—"
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        value = timezone.localtime(value)
        fmt = {"seconds": "j M Y, H:i:s T", "day": "j M Y (T)"}.get(style, "j M Y, H:i T")
        return date_format(value, fmt)
    return date_format(value, "j M Y")


@register.simple_tag
def zone_now() -> str:
    """The active zone's name, for the header's chooser and the pages' notes."""
    return timezone.get_current_timezone_name()


@register.filter
def label(value, kind: str) -> str:
    """A code as the words people read (web.labels): `{{ e.purpose|label:"purpose" }}`."""
    return {"purpose": labels.purpose_label, "state": labels.state_label, "action": labels.action_label,
            "channel": labels.channel_label, "kind": labels.kind_label, "identifier": labels.identifier_label,
            "dsr_type": labels.dsr_type_label, "dsr_status": labels.dsr_status_label,
            "field": lambda v: labels.FIELD_LABELS.get(v, labels.words(v)),
            "limit": lambda v: labels.LIMIT_LABELS.get(v, labels.words(v)),
            "statistic": lambda v: labels.STATISTIC_LABELS.get(v, labels.words(v)),
            "problem": labels.problem_label, "stage": labels.stage_label, "trigger": labels.trigger_label,
            "words": labels.words}[kind](value)


@register.filter
def badge(state) -> str:
    return labels.STATE_BADGES.get(str(state), "neutral")


@register.simple_tag
def zone_choices() -> list[str]:
    current = timezone.get_current_timezone_name()
    return list(ZONES) if current in ZONES else [current, *ZONES]
