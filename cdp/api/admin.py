"""API keys in the Django admin: list, create (the key is shown once), revoke.

No secret is ever displayed after creation; the stored hash is not shown either.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from cdp.api.services.api_keys import MAX_EXPIRY_DAYS, api_key_create, api_key_revoke
from cdp.core.http.models import ApiKey
from cdp.core.http.scopes import SCOPES
from cdp.models import Source


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in SCOPES], widget=forms.CheckboxSelectMultiple)
    source = forms.ModelChoiceField(queryset=Source.objects.order_by("key"), required=False,
                                    help_text="Bind the key to this source: it can then write only as it.")
    expires_days = forms.IntegerField(required=False, min_value=1, max_value=MAX_EXPIRY_DAYS,
                                      help_text="Leave empty for a key that does not expire.")

    class Meta:
        model = ApiKey
        fields = ["name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "display_prefix", "scope_list", "source", "expires_at", "revoked_at", "last_used_at",
                    "created_at"]
    list_filter = ["revoked_at", "source"]
    search_fields = ["name", "prefix"]
    ordering = ["-created_at"]
    actions = ["revoke"]
    readonly_fields = ["display_prefix", "scope_list", "source", "expires_at", "revoked_at", "last_used_at",
                       "created_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "scopes", "source", "expires_days"]
        return ["name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    @admin.display(description="key")
    def display_prefix(self, obj: ApiKey) -> str:
        return f"tsk_{obj.prefix}_…"

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])  # only the name is editable; scopes need a new key
            return
        source = form.cleaned_data.get("source")
        # The form already checked every value the service checks.
        created, plaintext = api_key_create(name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"],
                                            source_key=source.key if source else None,
                                            expires_days=form.cleaned_data.get("expires_days"),
                                            actor=f"staff:{request.user.pk}")
        # The admin goes on with `obj` (redirect, change log): make it the created row.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))
        obj._state.adding = False
        messages.warning(request, f"The new API key is shown once; store it now: {plaintext}")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key_id=key.pk, actor=f"staff:{request.user.pk}")
            count += 1
        messages.success(request, f"Revoked {count} key(s) at {timezone.now():%Y-%m-%d %H:%M} UTC.")
