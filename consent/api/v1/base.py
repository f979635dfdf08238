"""The one place the consent API borrows the integrator API's HTTP machinery.

Bearer-key authentication, scopes, the keys' boundary (which people a key bound to a
source may see), throttling, body limits, idempotency and cursor pagination are
infrastructure of `cdp.api`; consent's views use them through these
names only, so moving that machinery changes this file and nothing else.
"""

from __future__ import annotations

from cdp.api.pagination import paginate  # noqa: F401
from cdp.api.permissions import (  # noqa: F401
    key_boundary,
    profile_visible_check,
    source_for_write,
    unbound_only,
)
from cdp.api.schema import IDEMPOTENCY_HEADER, problems  # noqa: F401
from cdp.api.scopes import Scope  # noqa: F401
from cdp.api.services.idempotency import StoredResponse  # noqa: F401
from cdp.api.v1.views.base import ApiView, batch_limit, uuid_or_404, validated  # noqa: F401
