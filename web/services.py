"""What the pages change, each through the owning app's services, with an audit entry.

Customers' changes go to the consent ledger (channel `preference_center`, evidence as
keyed hashes); staff actions are written to the access log as operator actions (who,
which action, ids and codes). Nothing here logs personal data.
"""

from __future__ import annotations

from uuid import UUID

from django.db import transaction

from cdp.core.errors import ApplicationError
from consent.policy import Basis, effective_states
from consent.selectors import notice_current
from consent.services import Channel, ConsentChange, consents_record
from consent.services.access import subject_signals_honour
from consent.services.gpc import accessor_of, evidence_of, gpc_signalled

CUSTOMER_ACTOR = "data_subject"
SALE_SHARING = "sale_sharing"


class ChoiceRefused(ApplicationError):
    code = "choice_refused"


def gpc_honour(request, *, profile_id: UUID) -> None:
    """`Sec-GPC: 1` is the person's opt-out of sale and sharing (one ledger event, not one per page)."""
    subject_signals_honour(accessor=accessor_of(request, actor=CUSTOMER_ACTOR), profile_id=profile_id)


@transaction.atomic
def me_choices_save(*, profile_id: UUID, allowed: set[str], versions: dict[str, int | None], request,
                    only: set[str] | None = None) -> int:
    """Record what the person changed on the page; returns how many decisions were recorded.

    Only purposes whose box differs from what is in force now are decisions (an untouched
    box records nothing). A grant is recorded under the notice version the page showed,
    which must still be the current one: a notice published meanwhile must be read first.
    `only` limits the change to some purposes (the "turn personalization off" buttons).
    """
    changes = []
    for state in effective_states(profile_id):
        purpose = state["purpose"]
        if state["basis"] == Basis.CONTRACT or (only is not None and purpose not in only):
            continue
        want = purpose in allowed
        if want == state["granted"]:
            continue
        if want and purpose == SALE_SHARING and gpc_signalled(request):
            raise ChoiceRefused("Your browser sends a Global Privacy Control signal, which we honour as an "
                                "opt-out of sale and sharing. Turn the signal off to allow it.")
        version = versions.get(purpose)
        if want and version != notice_current(purpose):
            raise ChoiceRefused("The notice for this purpose changed while the page was open. "
                                "Please read the new notice and choose again.")
        changes.append(ConsentChange(purpose, want, version if want else None))
    if not changes:
        return 0
    results = consents_record(profile_id=profile_id, changes=changes, channel=Channel.PREFERENCE_CENTER,
                              actor=CUSTOMER_ACTOR, evidence=evidence_of(request), language="en")
    return sum(1 for r in results if r.status == "recorded")
