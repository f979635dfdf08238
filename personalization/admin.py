"""Operators' view of the pipeline and the privacy ledger.

Runs, chunks, dead letters and releases are read-only records; a budget's limit is the
one thing an operator edits (lower it to stop publishing, raise it for the next period).
Nothing here shows personal data: ids, counts, noisy values.
"""

from __future__ import annotations

from django.contrib import admin

from personalization.models import DpRelease, PipelineDeadLetter, PipelineRun, PrivacyBudget, Segmentation


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnly):
    list_display = ("id", "status", "stage", "trigger", "created_at", "finished_at", "model_version")
    list_filter = ("status", "trigger")
    readonly_fields = ("status", "stage", "trigger", "params", "counts", "timings", "errors", "model_version",
                       "chunks_total", "created_at", "started_at", "finished_at", "heartbeat_at")
    fieldsets = (
        (None, {"fields": ("status", "stage", "trigger", "params", "timings", "errors", "model_version",
                           "chunks_total", "created_at", "started_at", "finished_at", "heartbeat_at")}),
        # Exact figures stay inside the operator boundary: this page shows no release.
        ("Internal counts (exact: for operators only, never published or logged)", {"fields": ("counts",)}),
    )


@admin.register(PipelineDeadLetter)
class PipelineDeadLetterAdmin(ReadOnly):
    list_display = ("id", "task_name", "run", "stage", "chunk_index", "error_type", "retries", "created_at")
    list_filter = ("task_name", "error_type")


@admin.register(Segmentation)
class SegmentationAdmin(ReadOnly):
    list_display = ("id", "run", "k", "silhouette", "davies_bouldin", "created_at")


@admin.register(PrivacyBudget)
class PrivacyBudgetAdmin(admin.ModelAdmin):
    list_display = ("dataset", "period", "epsilon_spent", "epsilon_limit", "releases", "refusals", "updated_at")
    readonly_fields = ("dataset", "period", "epsilon_spent", "releases", "refusals", "updated_at")
    fields = ("dataset", "period", "epsilon_limit", "epsilon_spent", "releases", "refusals", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False  # ledgers are opened by the first release of a period

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DpRelease)
class DpReleaseAdmin(ReadOnly):
    list_display = ("id", "statistic", "dataset", "epsilon", "noise_scale", "error_bound_95", "contribution_bound",
                    "created_at")
    list_filter = ("statistic", "dataset")
