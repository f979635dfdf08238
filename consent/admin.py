"""Operators' settings for consent in the Django admin: bases, notices, retention, approvals.

Every change goes through the services, so each is recorded in the access log as an
operator action. The ledger, the access log and data-subject requests are not here:
compliance officers see them in /compliance/, and nobody edits them.
"""

from __future__ import annotations

from django.contrib import admin, messages

from consent.models import DsrApprovalRule, NoticeText, NoticeVersion, PurposeBasis, RetentionRule
from consent.notices import purpose_basis_set
from consent.services.dsr import dsr_approval_rule_set
from consent.services.retention import retention_rule_set


def _actor(request) -> str:
    return f"staff:{request.user.get_username()}"


@admin.register(PurposeBasis)
class PurposeBasisAdmin(admin.ModelAdmin):
    list_display = ("purpose", "jurisdiction", "basis", "updated_at")
    list_filter = ("purpose", "basis")
    fields = ("purpose", "jurisdiction", "basis")

    def save_model(self, request, obj, form, change):
        saved = purpose_basis_set(purpose=obj.purpose, jurisdiction=obj.jurisdiction, basis=obj.basis,
                                  actor=_actor(request))
        obj.pk = saved.pk
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False  # set the basis back to consent instead: the change is then logged


class NoticeTextInline(admin.StackedInline):
    model = NoticeText
    extra = 1
    fields = ("language", "title", "body")


@admin.register(NoticeVersion)
class NoticeVersionAdmin(admin.ModelAdmin):
    """Published notices are immutable: a change is a new version (add one here)."""

    list_display = ("purpose", "version", "material", "lifetime_days", "published_at")
    list_filter = ("purpose", "material")
    fields = ("purpose", "version", "material", "lifetime_days")
    readonly_fields = ("version",)
    inlines = [NoticeTextInline]

    def get_readonly_fields(self, request, obj=None):
        return ("purpose", "version", "material", "lifetime_days") if obj else ("version",)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        from django.db.models import Max

        from consent.events import operator_action_event
        from consent.ledger import policy_config_record
        from consent.notices import notices_ensure

        notices_ensure()
        obj.version = (NoticeVersion.objects.filter(purpose=obj.purpose).aggregate(v=Max("version"))["v"] or 0) + 1
        super().save_model(request, obj, form, change)
        policy_config_record(actor=_actor(request), action="notice_published")  # admin views run atomically
        operator_action_event(actor=_actor(request), action="notice_published",
                              detail={"purpose": obj.purpose, "version": obj.version, "material": obj.material,
                                      "lifetime_days": obj.lifetime_days})
        if obj.material:
            messages.warning(request, "Material version: grants under earlier versions no longer count.")


@admin.register(RetentionRule)
class RetentionRuleAdmin(admin.ModelAdmin):
    list_display = ("kind", "source", "days", "updated_at")
    list_filter = ("kind",)
    fields = ("kind", "source", "days")

    def save_model(self, request, obj, form, change):
        saved = retention_rule_set(kind=obj.kind, source=obj.source, days=obj.days, actor=_actor(request))
        obj.pk = saved.pk
        obj._state.adding = False


@admin.register(DsrApprovalRule)
class DsrApprovalRuleAdmin(admin.ModelAdmin):
    list_display = ("type", "requires_approval")
    fields = ("type", "requires_approval")

    def save_model(self, request, obj, form, change):
        dsr_approval_rule_set(request_type=obj.type, requires_approval=obj.requires_approval, actor=_actor(request))
