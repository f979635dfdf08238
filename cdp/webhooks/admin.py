"""Read-only admin views of subscriptions and the delivery log, for operators.

Secrets (even as ciphertexts) are never shown; subscriptions are created, rotated and
deleted through the API, so a secret is only ever shown to the integrator.
"""

from __future__ import annotations

from django.contrib import admin

from cdp.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(_ReadOnly):
    list_display = ("id", "url", "owner_key", "created_at", "secret_rotated_at", "deleted_at")
    list_filter = ("deleted_at",)
    fields = ("id", "url", "events", "owner_key", "owner_source", "created_at", "secret_rotated_at",
              "previous_secret_expires_at", "deleted_at")


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "outcome", "status_code", "error", "duration_ms", "started_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_ReadOnly):
    list_display = ("id", "subscription", "status", "attempts", "last_status_code", "next_attempt_at",
                    "delivered_at")
    list_filter = ("status",)
    search_fields = ("=id", "=subscription__id")
    fields = ("id", "subscription", "message", "status", "attempts", "last_status_code", "next_attempt_at",
              "created_at", "delivered_at")
    inlines = [WebhookAttemptInline]
