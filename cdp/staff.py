"""Staff roles: compliance officers and operators, as Django groups with least privilege.

Operators use /ops/ and the Django admin (sources, items, merges). Compliance officers
use /compliance/, and the Django admin for consent configuration only: legal bases,
notices, retention and DSR approval rules are theirs to add and change; operators may
read them. The admin's own per-model permission checks enforce this (each add and change
page answers 403 without the permission), and its pages already go through the consent
services, which write each change to the access log with its before and after. That is
less new surface than separate pages in /compliance/ with forms of their own.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

COMPLIANCE = "compliance"
OPERATOR = "operator"
ROLES = {COMPLIANCE, OPERATOR}

# Consent configuration (the models holding no personal data that decide consent and
# requests). Published notices are immutable, so they and their texts are only added.
CONSENT_CONFIGURATION_VIEW = [
    ("consent", "view_purposebasis"), ("consent", "view_noticeversion"), ("consent", "view_noticetext"),
    ("consent", "view_retentionrule"), ("consent", "view_dsrapprovalrule"),
]
CONSENT_CONFIGURATION_EDIT = [
    ("consent", "add_purposebasis"), ("consent", "change_purposebasis"),
    ("consent", "add_noticeversion"), ("consent", "add_noticetext"),
    ("consent", "add_retentionrule"), ("consent", "change_retentionrule"),
    ("consent", "add_dsrapprovalrule"), ("consent", "change_dsrapprovalrule"),
]

# Operators manage sources, items and merge conflicts in the admin, read the Segment
# ingestion-error log (each decrypted message they open is logged) and read the consent
# configuration; no one edits ciphertexts or identities by hand. API keys are a superuser's:
# a key can carry any scope.
OPERATOR_PERMISSIONS = [
    ("segment", "view_ingestionerror"),
    ("cdp", "view_source"), ("cdp", "add_source"), ("cdp", "change_source"),
    ("cdp", "view_item"), ("cdp", "add_item"), ("cdp", "change_item"),
    ("cdp", "view_profile"), ("cdp", "view_mergeconflict"), ("cdp", "change_mergeconflict"),
    ("cdp", "view_merge"), ("cdp", "change_merge"),
    *CONSENT_CONFIGURATION_VIEW,
]
# Compliance officers own the consent configuration (each change is written to the access
# log, with before and after, by the consent services) and nothing else in the admin.
COMPLIANCE_PERMISSIONS = [*CONSENT_CONFIGURATION_VIEW, *CONSENT_CONFIGURATION_EDIT]
ROLE_PERMISSIONS = {OPERATOR: OPERATOR_PERMISSIONS, COMPLIANCE: COMPLIANCE_PERMISSIONS}


def role_group(role: str) -> Group:
    """The role's group with exactly the role's permissions (re-applied on every call)."""
    group, _ = Group.objects.get_or_create(name=role)
    perms = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in ROLE_PERMISSIONS[role]]
    group.permissions.set(perms)
    return group


@transaction.atomic
def staff_create(*, username: str, role: str, password: str):
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}.")
    user = get_user_model().objects.create_user(username=username, password=password)
    user.is_staff = True  # the admin shows each role only what its group's permissions allow
    user.save(update_fields=["is_staff"])
    user.groups.add(role_group(role))
    return user


def has_role(user, role: str) -> bool:
    return bool(user and user.is_authenticated and user.is_active
                and (user.is_superuser or user.groups.filter(name=role).exists()))
