"""Consent configuration in the Django admin: legal bases, notices, retention, DSR approvals.

Compliance officers add and change these; operators may only read them (cdp.staff gives
each role its permissions, the admin checks them on every page). Every change goes
through the consent services, which write it to the access log with what the setting
was and what it became; the compliance console lists those entries. Nothing here is
deleted (a setting is set back instead, which is logged too), and the keys that name a
setting are fixed once it exists, so a change is always a change of that one row.
The ledger, the access log and data-subject requests are not here: compliance officers
see them in /compliance/, and nobody edits them.
"""

from __future__ import annotations

from django.contrib import admin, messages

from consent.ledger import policy_config_record
from consent.models import DsrApprovalRule, NoticeText, NoticeVersion, PurposeBasis, RetentionRule
from consent.notices import notice_next_version, notice_published_event, purpose_basis_set
from consent.services.dsr import dsr_approval_rule_set
from consent.services.retention import retention_rule_set


def _actor(request) -> str:
    return f"staff:{request.user.pk}"  # by id, as everywhere in the access log (a user name can be personal)


class ConfigurationAdmin(admin.ModelAdmin):
    key_fields: tuple = ()

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, *self.key_fields) if obj else fields

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        return False  # set it back instead: that change is logged

    def saved(self, obj, row) -> None:
        obj.pk = row.pk
        obj._state.adding = False


@admin.register(PurposeBasis)
class PurposeBasisAdmin(ConfigurationAdmin):
    list_display = ("purpose", "jurisdiction", "basis", "updated_at")
    list_filter = ("purpose", "basis")
    fields = ("purpose", "jurisdiction", "basis")
    key_fields = ("purpose", "jurisdiction")

    def save_model(self, request, obj, form, change):
        self.saved(obj, purpose_basis_set(purpose=obj.purpose, jurisdiction=obj.jurisdiction, basis=obj.basis,
                                          actor=_actor(request)))


class NoticeTextInline(admin.StackedInline):
    """Texts are written with their version and never changed after (a change is a new version)."""

    model = NoticeText
    extra = 0
    min_num = 1  # a notice says something in at least one language

    def get_formset(self, request, obj=None, **kwargs):
        return super().get_formset(request, obj, validate_min=True, **kwargs)
    fields = ("language", "title", "body")

    def has_add_permission(self, request, obj=None):
        return obj is None and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(NoticeVersion)
class NoticeVersionAdmin(ConfigurationAdmin):
    """Published notices are immutable: a change is a new version (add one here)."""

    list_display = ("purpose", "version", "material", "lifetime_days", "published_at")
    list_filter = ("purpose", "material")
    fields = ("purpose", "version", "material", "lifetime_days")
    readonly_fields = ("version",)
    inlines = [NoticeTextInline]

    def get_readonly_fields(self, request, obj=None):
        return ("purpose", "version", "material", "lifetime_days") if obj else ("version",)

    def has_change_permission(self, request, obj=None):
        return False

    # The admin saves a POST in one transaction: the version, its texts and the log entry.
    def save_model(self, request, obj, form, change):
        obj.version = notice_next_version(obj.purpose)
        super().save_model(request, obj, form, change)
        policy_config_record(actor=_actor(request), action="notice_published")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # the texts
        notice_published_event(notice=form.instance, actor=_actor(request))
        if form.instance.material:
            messages.warning(request, "Material version: grants under earlier versions no longer count.")


@admin.register(RetentionRule)
class RetentionRuleAdmin(ConfigurationAdmin):
    list_display = ("kind", "source", "days", "updated_at")
    list_filter = ("kind",)
    fields = ("kind", "source", "days")
    key_fields = ("kind", "source")

    def save_model(self, request, obj, form, change):
        self.saved(obj, retention_rule_set(kind=obj.kind, source=obj.source, days=obj.days, actor=_actor(request)))


@admin.register(DsrApprovalRule)
class DsrApprovalRuleAdmin(ConfigurationAdmin):
    list_display = ("type", "requires_approval")
    fields = ("type", "requires_approval")
    key_fields = ("type",)

    def save_model(self, request, obj, form, change):
        self.saved(obj, dsr_approval_rule_set(request_type=obj.type, requires_approval=obj.requires_approval,
                                              actor=_actor(request)))
