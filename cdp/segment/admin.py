"""The ingestion-error log in the Django admin, for operators.

The list shows ids, source, type, codes and time only. The decrypted message appears on
a row's own page, and each such view is logged (who and which row, never the content).
"""

from __future__ import annotations

import json
import logging

from django.contrib import admin
from django.utils.html import format_html

from cdp.segment.models import IngestionError
from cdp.segment.services import ingestion_error_message_read
from consent.services.access import operator_action_event

logger = logging.getLogger(__name__)


@admin.register(IngestionError)
class IngestionErrorAdmin(admin.ModelAdmin):
    list_display = ("id", "source", "message_type", "codes", "received_at")
    list_filter = ("source", "message_type")
    date_hierarchy = "received_at"
    search_fields = ("=id",)
    fields = ("id", "source", "message_type", "codes", "received_at", "decrypted_message")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # retention and erasure delete rows together with their data keys

    @admin.display(description="Message (decrypted)")
    def decrypted_message(self, obj):
        message = ingestion_error_message_read(error=obj)
        if message is None:
            return "Shredded: the data key was deleted."
        return format_html("<pre>{}</pre>", json.dumps(message, indent=2, ensure_ascii=False, sort_keys=True))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Who read which row's personal data; never the content.
        logger.info("ingestion_error_viewed", extra={"error_id": str(object_id), "user_id": request.user.pk})
        operator_action_event(actor=f"staff:{request.user.pk}", action="ingestion_error.viewed",
                              detail={"ingestion_error_id": str(object_id)})
        return super().change_view(request, object_id, form_url, extra_context)
