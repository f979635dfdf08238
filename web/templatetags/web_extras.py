"""Template helpers for the pages."""

from __future__ import annotations

from django import template
from django.contrib.auth import get_user_model

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
    """An audit actor for people: `staff:<id>` shows the staff member's user name.

    Audit rows name staff by id (user names can be personal); the console resolves them
    for its readers, with one query per page.
    """
    text = str(value or "")
    if not text.startswith("staff:"):
        return text
    names = context.render_context.get("web_staff_names")
    if names is None:
        names = {str(pk): name for pk, name in get_user_model().objects.values_list("pk", "username")}
        context.render_context["web_staff_names"] = names
    key = text.removeprefix("staff:")
    return f"{names[key]} (staff)" if key in names else text
