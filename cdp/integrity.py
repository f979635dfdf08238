"""Finding rows whose reference points at nothing.

The high-volume tables reference their profile, source, record and data key without a
database foreign-key constraint (see cdp.models): the code that writes them guarantees
the targets exist. This is the check that the guarantee holds, for an operator
(`manage.py check_integrity`) and for the tests after every kind of change (ingestion,
merges and their undoing, erasure, retention, source deletion).

Reads ids only; logs nothing.
"""

from __future__ import annotations

from django.apps import apps
from django.db.models import Exists, OuterRef

# The apps whose models are checked: ours.
_APPS = ("cdp", "core", "consent", "personalization", "segment", "webhooks")


def unconstrained_relations() -> list[tuple]:
    """(model, field) for every foreign key of ours that the database does not enforce."""
    found = []
    for config in apps.get_app_configs():
        if config.label not in _APPS:
            continue
        for model in config.get_models():
            for field in model._meta.concrete_fields:
                if (field.many_to_one or field.one_to_one) and not field.db_constraint:
                    found.append((model, field))
    return found


def dangling_references() -> dict[str, int]:
    """Rows naming a missing target, by relation ("cdp.AttributeValue.record"); only
    relations with any are listed, so an empty dict means intact."""
    dangling = {}
    for model, field in unconstrained_relations():
        target = field.related_model
        missing = target._default_manager.filter(**{field.target_field.attname: OuterRef(field.attname)})
        count = model._default_manager.exclude(**{field.attname: None}).filter(~Exists(missing)).count()
        if count:
            dangling[f"{model._meta.label}.{field.name}"] = count
    return dangling
