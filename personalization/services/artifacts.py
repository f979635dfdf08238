"""The fitted recommender handed between workers: stored signed, loaded once per process.

During a run the artifact holds the model with the interaction rows of the run's people
(the chunk tasks score those rows). When the run succeeds it becomes the served model for
refreshes between fits (services/realtime.py), kept without the people: what scores a
person's current history is the item-item weights, the content model and popularity,
not anyone's fitted row, so erasure has nothing to reach in it.
"""

from __future__ import annotations

import hmac
import pickle  # noqa: S403 - our own artifact, HMAC-checked before loading
from hashlib import sha256

from django.conf import settings

from personalization.models import PipelineArtifact

ARTIFACT = "recommender"
_loaded: dict[str, dict] = {}


def _sign(blob: bytes) -> str:
    # Only what our own fit task wrote may be unpickled: a row edited in the database
    # cannot become code running in a worker.
    key = sha256(b"tessera.personalization.artifact:" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, blob, sha256).hexdigest()


def artifact_store(*, run_id: int, payload: dict) -> None:
    blob = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    PipelineArtifact.objects.update_or_create(run_id=run_id, name=ARTIFACT,
                                              defaults={"data": blob, "signature": _sign(blob)})


def artifact_load(run_id: int) -> dict:
    """The run's fitted model, loaded once per worker process (keyed by its signature, so a
    reused run id or a stripped copy can never be served a stale model)."""
    signature = PipelineArtifact.objects.filter(run_id=run_id, name=ARTIFACT).values_list(
        "signature", flat=True).get()
    if signature not in _loaded:
        blob = bytes(PipelineArtifact.objects.filter(run_id=run_id, name=ARTIFACT).values_list(
            "data", flat=True).get())
        if not hmac.compare_digest(_sign(blob), signature):
            raise ValueError("The recommender artifact's signature does not match.")
        _loaded.clear()  # one run at a time: keep memory to one model
        _loaded[signature] = pickle.loads(blob)  # noqa: S301 - signed by us, checked above
    return _loaded[signature]


def artifact_serve(*, run_id: int) -> None:
    """At the run's success: keep its model without the people it was fitted on (a model
    that cannot drop them is deleted: nothing is refreshed until the next run)."""
    if not PipelineArtifact.objects.filter(run_id=run_id, name=ARTIFACT).exists():
        return
    payload = artifact_load(run_id)
    model = payload["model"]
    if not hasattr(model, "without_people"):
        PipelineArtifact.objects.filter(run_id=run_id, name=ARTIFACT).delete()
        return
    artifact_store(run_id=run_id, payload={**payload, "model": model.without_people(), "row_of": {}})
