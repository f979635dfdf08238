"""The Django admin for operators.

Only ids, statuses and non-personal fields are shown: ciphertexts and blind indexes never
appear, and every model's __str__ is an id, so the admin log's object_repr holds no
personal data.
"""

from __future__ import annotations

from django.contrib import admin, messages

from cdp.core.errors import ApplicationError
from cdp.models import Item, Merge, MergeConflict, Profile, Source
from cdp.services.merges import merge_undo
from cdp.services.sources import source_assurance_change, source_create, source_holds_data


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "kind", "trust", "assurance", "write_key_prefix", "created_at")
    list_filter = ("kind", "assurance")
    search_fields = ("key", "name")
    readonly_fields = ("write_key_prefix", "created_at")
    fields = ("key", "name", "kind", "trust", "assurance", "time_zone", "write_key_prefix", "created_at")

    def get_readonly_fields(self, request, obj=None):
        # The key names a source everywhere (lineage, namespaces): fixed once created.
        return (*self.readonly_fields, "key") if obj else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # A source that sent data is part of that data's lineage, and listing its rows on
        # the confirmation page would read them all: only a source made by mistake goes.
        if obj is not None and source_holds_data(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        # One at a time, through the check above: the bulk action would collect every row.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        if change:
            assurance = obj.assurance
            super().save_model(request, obj, form, change)
            if "assurance" in form.changed_data:
                source_assurance_change(source=obj, assurance=assurance)
            return
        source, write_key = source_create(key=obj.key, name=obj.name, kind=obj.kind, trust=obj.trust,
                                          assurance=obj.assurance, time_zone=obj.time_zone)
        obj.pk, obj.write_key_hash, obj.write_key_prefix = source.pk, source.write_key_hash, source.write_key_prefix
        obj._state.adding = False
        messages.warning(request, f"Write key for '{source.key}' (shown once, store it now): {write_key}")


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "version", "created_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("=id",)
    fields = ("id", "status", "merged_into", "version", "created_at", "updated_at", "erased_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # erasure is a data-subject request, not a row deletion


@admin.register(MergeConflict)
class MergeConflictAdmin(admin.ModelAdmin):
    list_display = ("id", "reason", "status", "profile", "created_at")
    list_filter = ("status", "reason")
    readonly_fields = ("id", "record", "profile", "other_profiles", "reason", "created_at", "resolved_at")
    fields = ("id", "profile", "other_profiles", "reason", "status", "record", "created_at", "resolved_at")

    def has_add_permission(self, request):
        return False


@admin.register(Merge)
class MergeAdmin(admin.ModelAdmin):
    list_display = ("id", "survivor", "absorbed", "reason", "created_at", "undone_at")
    list_filter = ("reason",)
    fields = ("id", "survivor", "absorbed", "reason", "created_at", "undone_at")
    readonly_fields = fields
    actions = ["undo_merges"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Undo the selected merges", permissions=["change"])
    def undo_merges(self, request, queryset):
        for merge in queryset:
            try:
                merge_undo(merge_id=merge.id, actor=f"staff:{request.user.pk}")
                self.message_user(request, f"Undid merge {merge.id}.")
            except ApplicationError as error:
                self.message_user(request, f"Merge {merge.id}: {error}", level=messages.ERROR)


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "category", "updated_at")
    list_filter = ("category",)
    search_fields = ("id", "title")
