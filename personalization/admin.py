"""Operators' view of the pipeline and the privacy ledger.

Runs, chunks, dead letters, releases and the privacy-budget ledger are read-only records:
a budget's caps are changed by compliance officers, with a reason, in the compliance console.
Nothing here shows personal data: ids, counts, noisy values.
"""

from __future__ import annotations

from django.contrib import admin

from personalization.models import (
    DpRelease,
    PipelineDeadLetter,
    PipelineRun,
    PrivacyBudget,
    PrivacyBudgetChange,
    PrivacyBudgetPeriod,
    Segmentation,
)


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
    list_display = ("id", "run", "k", "definition", "created_at")


@admin.register(PrivacyBudget)
class PrivacyBudgetAdmin(ReadOnly):
    """Read-only here: caps are changed by compliance officers, with a reason, at /compliance/budget/."""

    list_display = ("dataset", "epsilon_spent", "epsilon_limit", "period_epsilon_limit", "delta_spent",
                    "delta_limit", "releases", "refusals", "updated_at")


@admin.register(PrivacyBudgetPeriod)
class PrivacyBudgetPeriodAdmin(ReadOnly):
    list_display = ("budget", "period", "epsilon_spent", "releases", "refusals")


@admin.register(PrivacyBudgetChange)
class PrivacyBudgetChangeAdmin(ReadOnly):
    list_display = ("budget", "limit", "old_value", "new_value", "actor", "at", "reason")


@admin.register(DpRelease)
class DpReleaseAdmin(ReadOnly):
    list_display = ("id", "statistic", "dataset", "epsilon", "noise_scale", "error_bound_95", "contribution_bound",
                    "created_at")
    list_filter = ("statistic", "dataset")
