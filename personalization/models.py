"""Personalization: pipeline runs, features, segments, recommendations, DP releases.

Derived data refers to people by plain profile ids (UUIDs) without foreign keys: a row
here never holds a lock on, or blocks changes to, the profile tables, and erasure or a
consent withdrawal removes it through the handlers in `personalization.services.cleanup`.
Nothing here stores a name, an e-mail or any other identifier: ids, numbers, item ids.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Stage(models.TextChoices):
    """The pipeline's stages in order; fan-out stages run as one task per profile-id range."""

    PLANNED = "planned", "Planned"
    FEATURES = "features", "Features (fan-out)"
    SEGMENTS_FIT = "segments_fit", "Segmentation fit"
    SEGMENTS_ASSIGN = "segments_assign", "Segment memberships (fan-out)"
    RECOMMENDER_FIT = "recommender_fit", "Recommender fit"
    RECOMMENDATIONS = "recommendations", "Recommendations (fan-out)"
    PREDICTIONS = "predictions", "Churn and lifetime value"
    RELEASES = "releases", "Differentially private releases"
    DONE = "done", "Done"


class PipelineRun(models.Model):
    """One run of features → segments → recommendations → DP releases, with its progress."""

    id = models.BigAutoField(primary_key=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.PLANNED)
    # True while pending or running, NULL after: the unique constraint allows one active run.
    active = models.BooleanField(null=True, default=True, editable=False)
    trigger = models.CharField(max_length=16, default="command")
    params = models.JSONField(default=dict, help_text="Chunk size, k range, top-k, seed.")
    counts = models.JSONField(default=dict, help_text="Profiles planned, featured, segmented, scored, ...")
    timings = models.JSONField(default=dict, help_text="Seconds per stage.")
    errors = models.JSONField(default=list, help_text="[{stage, chunk, code, message}]: no personal data.")
    model_version = models.CharField(max_length=64, blank=True)
    chunks_total = models.PositiveIntegerField(default=0, help_text="Profile-id ranges per fan-out stage.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress; the watchdog's clock.")
    quality = models.JSONField(default=dict, blank=True,
                               help_text="Beyond-accuracy figures of the served lists (coverage, Gini, novelty, "
                                         "ILD, popularity miscalibration, per-segment gaps); aggregates only.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="one_active_pipeline_run"),
        ]
        indexes = [models.Index(fields=["status", "-finished_at"], name="pipeline_run_status_idx")]

    def __str__(self) -> str:
        return f"pipeline run {self.id}"


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed (dead-lettered)"


class PipelineChunk(models.Model):
    """One profile-id range of one fan-out stage; `done` is written with the chunk's data.

    Because the data and the `done` mark commit together, a redelivered task finds the
    mark and does nothing: the range's rows are written exactly once however often the
    message arrives.
    """

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="chunks")
    stage = models.CharField(max_length=16, choices=Stage.choices)
    index = models.PositiveIntegerField()
    lower = models.UUIDField(null=True, blank=True, help_text="Inclusive; NULL: from the start.")
    upper = models.UUIDField(null=True, blank=True, help_text="Exclusive; NULL: to the end.")
    status = models.CharField(max_length=8, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    count = models.PositiveIntegerField(default=0, help_text="Rows written (profiles featured, scored...).")
    skipped = models.PositiveIntegerField(default=0, help_text="Profiles in range without the purpose.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "stage", "index"], name="pipeline_chunk_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.stage} chunk {self.index}"


class PipelineDeadLetter(models.Model):
    """A task that failed for good (retries exhausted or a permanent error), kept for operators.

    Holds the task's name and arguments (ids and numbers) so it can be replayed, and the
    error's type and a message that never carries personal data.
    """

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    task_name = models.CharField(max_length=200)
    task_id = models.CharField(max_length=64, blank=True)
    arguments = models.JSONField(default=dict)
    stage = models.CharField(max_length=16, blank=True)
    chunk_index = models.IntegerField(null=True, blank=True)
    retries = models.PositiveIntegerField(default=0)
    error_type = models.CharField(max_length=200)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"dead letter {self.id}"


class PipelineArtifact(models.Model):
    """A fitted model handed from the fit task to the chunk tasks on other workers.

    Deleted when the run ends: it holds the interaction matrix of the run's people.
    """

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=64)
    data = models.BinaryField()
    signature = models.CharField(max_length=64, help_text="HMAC-SHA256 of data; checked before loading.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="pipeline_artifact_unique")]


class ProfileFeatures(models.Model):
    """RFM and behavioural features of one analytics-allowed profile, per run."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="+")
    profile_id = models.UUIDField()
    recency_days = models.FloatField(help_text="Days since the last purchase (since arrival if none).")
    frequency = models.PositiveIntegerField(help_text="Orders: distinct purchase times.")
    monetary = models.DecimalField(max_digits=14, decimal_places=2, help_text="Total spend.")
    tenure_days = models.FloatField(help_text="Days since the first event.")
    purchases = models.PositiveIntegerField(default=0)
    views = models.PositiveIntegerField(default=0)
    carts = models.PositiveIntegerField(default=0)
    ratings = models.PositiveIntegerField(default=0)
    average_rating = models.FloatField(null=True, blank=True)
    distinct_items = models.PositiveIntegerField(default=0)
    active_days = models.PositiveIntegerField(default=0)
    last_event_at = models.DateTimeField()
    first_purchase_days = models.FloatField(null=True, blank=True, help_text="Days since the first purchase.")

    class Meta:
        verbose_name_plural = "profile features"
        constraints = [models.UniqueConstraint(fields=["run", "profile_id"], name="features_unique")]
        indexes = [models.Index(fields=["profile_id"], name="features_profile_idx")]


class RefreshPending(models.Model):
    """A person whose newly committed events wait for a real-time refresh
    (services/realtime_pending.py): written after the ingestion commits, taken by the
    next drain, so the events of many requests make one refresh. Rows live for moments."""

    id = models.BigAutoField(primary_key=True)
    profile_id = models.UUIDField()
    committed_at = models.DateTimeField(help_text="When the events' transaction committed (for the lag histogram).")


class Segmentation(models.Model):
    """One run's segmentation: differentially private centroids (DP-Lloyd) and what members need to be assigned."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.OneToOneField(PipelineRun, null=True, on_delete=models.SET_NULL, related_name="segmentation")
    k = models.PositiveSmallIntegerField(help_text="Public: a pipeline parameter.")
    definition = models.ForeignKey("DpRelease", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The DP release of the centroids and RFM cut points (DP-Lloyd); a "
                                             "run the budget cannot pay for reuses the newest one.")
    seed = models.IntegerField()
    # The fitted model, so chunk tasks assign members exactly as the fit did: noisy outputs only.
    model = models.JSONField(help_text="Feature bounds, DP centroids, DP RFM cut points.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"segmentation {self.id}"


class Segment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    segmentation = models.ForeignKey(Segmentation, on_delete=models.CASCADE, related_name="segments")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64)
    centroid = models.JSONField(help_text="The DP centroid in original units (post-processing of the release).")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segmentation", "index"], name="segment_index_unique"),
            models.UniqueConstraint(fields=["segmentation", "name"], name="segment_name_unique"),
        ]

    def __str__(self) -> str:
        return f"segment {self.id}"


class SegmentMembership(models.Model):
    """A profile's segment and RFM quintile scores in one segmentation (versioned by it)."""

    id = models.BigAutoField(primary_key=True)
    segmentation = models.ForeignKey(Segmentation, on_delete=models.CASCADE, related_name="+")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    profile_id = models.UUIDField()
    r_score = models.PositiveSmallIntegerField()
    f_score = models.PositiveSmallIntegerField()
    m_score = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            # One segment per person per segmentation: what the DP releases' parallel
            # composition over segments relies on.
            models.UniqueConstraint(fields=["segmentation", "profile_id"], name="membership_unique"),
        ]
        indexes = [
            models.Index(fields=["segment", "profile_id"], name="membership_segment_idx"),
            models.Index(fields=["profile_id"], name="membership_profile_idx"),
        ]

    @property
    def rfm_score(self) -> str:
        return f"{self.r_score}{self.f_score}{self.m_score}"


class Recommendation(models.Model):
    """One recommended item for one personalization-allowed profile, with its explanation."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="+")
    profile_id = models.UUIDField()
    rank = models.PositiveSmallIntegerField()
    item_id = models.CharField(max_length=128)
    title = models.CharField(max_length=300)
    score = models.FloatField()
    explanation = models.JSONField(help_text="Structured explanation with a human sentence under `text`.")
    model_version = models.CharField(max_length=64)
    created_at = models.DateTimeField(help_text="When the list was computed (by the run or a refresh).")
    as_of = models.DateTimeField(null=True, blank=True,
                                 help_text="When the newest event the list reflects occurred; NULL: none.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile_id", "run", "rank"], name="recommendation_rank_unique"),
            models.UniqueConstraint(fields=["profile_id", "run", "item_id"], name="recommendation_item_unique"),
        ]


class PrivacyBudget(models.Model):
    """The lifetime privacy-budget ledger of one protected data set: never reset.

    `epsilon_spent` (and `delta_spent`) only grow, over the data set's whole life; the caps
    bound them. Periods (calendar months, PrivacyBudgetPeriod) only pace the spending within
    the lifetime cap. Debited only by `personalization.privacy`, under a row lock; a cap is
    changed only by a compliance officer, with a reason, through
    `privacy.privacy_budget_limits_change` (each change is a PrivacyBudgetChange row).
    """

    id = models.BigAutoField(primary_key=True)
    dataset = models.CharField(max_length=64, unique=True)
    epsilon_limit = models.DecimalField(max_digits=12, decimal_places=6, help_text="Lifetime cap on ε.")
    epsilon_spent = models.DecimalField(max_digits=12, decimal_places=6, default=0, help_text="Lifetime ε spent.")
    delta_limit = models.DecimalField(max_digits=20, decimal_places=15, default=0,
                                      help_text="Lifetime cap on δ (0: only pure ε-DP releases).")
    delta_spent = models.DecimalField(max_digits=20, decimal_places=15, default=0)
    period_epsilon_limit = models.DecimalField(max_digits=12, decimal_places=6, default=1,
                                               help_text="Most ε one calendar month may spend (pacing only).")
    releases = models.PositiveIntegerField(default=0)
    refusals = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(epsilon_spent__lte=models.F("epsilon_limit")),
                                   name="privacy_budget_not_overspent"),
            models.CheckConstraint(condition=Q(delta_spent__lte=models.F("delta_limit")),
                                   name="privacy_budget_delta_not_overspent"),
        ]

    def __str__(self) -> str:
        return f"privacy budget of {self.dataset}"


class PrivacyBudgetPeriod(models.Model):
    """What one calendar month spent of a lifetime budget: the pace, never a new allowance."""

    id = models.BigAutoField(primary_key=True)
    budget = models.ForeignKey(PrivacyBudget, on_delete=models.PROTECT, related_name="periods")
    period = models.CharField(max_length=16, help_text="YYYY-MM")
    epsilon_spent = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    releases = models.PositiveIntegerField(default=0)
    refusals = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["budget", "period"], name="privacy_budget_period_unique")]

    def __str__(self) -> str:
        return f"{self.budget.dataset} {self.period}"


class PrivacyBudgetChange(models.Model):
    """A compliance officer's change of a budget's cap or pace, with the reason: append-only."""

    id = models.BigAutoField(primary_key=True)
    budget = models.ForeignKey(PrivacyBudget, on_delete=models.PROTECT, related_name="changes")
    at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    limit = models.CharField(max_length=32, help_text="epsilon_limit, delta_limit or period_epsilon_limit.")
    old_value = models.DecimalField(max_digits=20, decimal_places=15)
    new_value = models.DecimalField(max_digits=20, decimal_places=15)
    reason = models.TextField()

    def __str__(self) -> str:
        return f"{self.limit} of {self.budget.dataset}: {self.old_value} → {self.new_value}"


class DpRelease(models.Model):
    """One differentially private release: only noisy values, with what it cost and how accurate it is."""

    id = models.BigAutoField(primary_key=True)
    budget = models.ForeignKey(PrivacyBudget, on_delete=models.PROTECT, related_name="releases_made")
    dataset = models.CharField(max_length=64)
    query_key = models.CharField(max_length=200, help_text="What was asked; the same question is never paid twice.")
    statistic = models.CharField(max_length=32)
    segmentation = models.ForeignKey(Segmentation, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="releases")
    run = models.ForeignKey(PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    values = models.JSONField(help_text="{category: noisy value}")
    epsilon = models.FloatField(help_text="Charged to the ledger (0 for post-processing).")
    delta = models.FloatField(default=0.0, help_text="δ charged (0: pure ε-DP).")
    period = models.CharField(max_length=16, blank=True, help_text="The month whose pace it was paid from.")
    mechanism = models.CharField(max_length=200)
    noise_scale = models.FloatField(null=True, blank=True)
    error_bound_95 = models.FloatField(help_text="|noisy − true| stays below this with 95% probability, per value.")
    contribution_bound = models.PositiveIntegerField(help_text="Most rows one person adds to the input.")
    clamp_lower = models.FloatField(null=True, blank=True)
    clamp_upper = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "query_key"], name="dp_release_once")]

    def __str__(self) -> str:
        return f"release {self.id} {self.statistic}"


class ChurnRisk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class PredictionModel(models.Model):
    """One run's fitted churn/CLV models: parameters and fit figures, no person."""

    run = models.OneToOneField(PipelineRun, on_delete=models.CASCADE, related_name="prediction_model")
    model_version = models.CharField(max_length=64)
    transactions = models.JSONField(help_text="BG/NBD-family parameters (TransactionModel.as_dict).")
    spend = models.JSONField(help_text="Gamma-Gamma parameters (SpendModel.as_dict).")
    fit_seconds = models.FloatField()
    # Expected vs observed customers by repeat purchases: internal (exact counts), shown
    # to operators only as a DP release (personalization.privacy).
    fit_check = models.JSONField(default=dict, help_text="{expected: [...], observed: [...]} by repeat count.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"prediction model of run {self.run_id}"


class Prediction(models.Model):
    """Churn risk and expected value of one analytics-allowed profile, per run."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="+")
    profile_id = models.UUIDField()
    p_alive = models.FloatField()
    expected_purchases_90d = models.FloatField(help_text="Expected orders in the next 90 days.")
    expected_value = models.DecimalField(max_digits=14, decimal_places=2, help_text="Expected spend in 90 days.")
    churn_risk = models.CharField(max_length=8, choices=ChurnRisk.choices)
    explanation = models.JSONField(help_text="{text, ...}: the figures the sentence is made of.")
    model_version = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "profile_id"], name="prediction_unique")]
        indexes = [models.Index(fields=["profile_id"], name="prediction_profile_idx")]


class RecommenderEvaluation(models.Model):
    """An offline evaluation (`evaluate_recommender --save`): its JSON document as printed,
    kept for the operator dashboard. Aggregate metrics only: no person, no interaction."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True)
    dataset = models.CharField(max_length=200)
    k = models.PositiveSmallIntegerField()
    document = models.JSONField(help_text="evaluate_recommender's output (CONTRACT.md).")

    def __str__(self) -> str:
        return f"recommender evaluation {self.id} on {self.dataset}"


class OverrideKind(models.TextChoices):
    BLOCK = "block", "Blocked from recommendations"
    PIN = "pin", "Pinned first"


class RecommendationOverride(models.Model):
    """An operator's decision about one item: never recommend it (block), or put it first in
    the lists of one segment's customers, or of everyone (pin). Enforced by the pipeline and
    the real-time refresh from the next list computed; each change is in the audit trail."""

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=8, choices=OverrideKind.choices)
    item_id = models.CharField(max_length=128)
    segment_name = models.CharField(max_length=64, blank=True,
                                    help_text="Pins only: the segment (by name) whose customers see it; blank: all.")
    reason = models.CharField(max_length=500)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_by = models.CharField(max_length=150, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True, help_text="NULL while in force.")

    class Meta:
        indexes = [models.Index(fields=["lifted_at"], name="recommendation_override_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.item_id}"
