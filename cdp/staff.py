"""Staff roles: compliance officers and operators, as Django groups with least privilege.

Operators use the Django admin and /ops/; compliance officers use /compliance/ and get
no admin access at all.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

COMPLIANCE = "compliance"
OPERATOR = "operator"
ROLES = {COMPLIANCE, OPERATOR}

# Operators manage sources, items and merge conflicts in the admin; no one edits
# ciphertexts or identities by hand.
OPERATOR_PERMISSIONS = [
    ("cdp", "view_source"), ("cdp", "add_source"), ("cdp", "change_source"),
    ("cdp", "view_item"), ("cdp", "add_item"), ("cdp", "change_item"),
    ("cdp", "view_profile"), ("cdp", "view_mergeconflict"), ("cdp", "change_mergeconflict"),
    ("cdp", "view_merge"), ("cdp", "change_merge"),
    # Consent settings (each change is logged as an operator action by consent's services).
    ("consent", "view_purposebasis"), ("consent", "add_purposebasis"), ("consent", "change_purposebasis"),
    ("consent", "view_noticeversion"), ("consent", "add_noticeversion"),
    ("consent", "view_noticetext"), ("consent", "add_noticetext"),
    ("consent", "view_retentionrule"), ("consent", "add_retentionrule"), ("consent", "change_retentionrule"),
    ("consent", "view_dsrapprovalrule"), ("consent", "add_dsrapprovalrule"), ("consent", "change_dsrapprovalrule"),
]


def role_group(role: str) -> Group:
    group, _ = Group.objects.get_or_create(name=role)
    if role == OPERATOR:
        perms = [Permission.objects.get(content_type__app_label=app, codename=code)
                 for app, code in OPERATOR_PERMISSIONS]
        group.permissions.set(perms)
    return group


@transaction.atomic
def staff_create(*, username: str, role: str, password: str):
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}.")
    user = get_user_model().objects.create_user(username=username, password=password)
    user.is_staff = role == OPERATOR  # only operators may enter the Django admin
    user.save(update_fields=["is_staff"])
    user.groups.add(role_group(role))
    return user


def has_role(user, role: str) -> bool:
    return bool(user and user.is_authenticated and user.is_active
                and (user.is_superuser or user.groups.filter(name=role).exists()))
