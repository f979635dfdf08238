"""The one place the consent API borrows the integrator API's HTTP machinery.

Bearer-key authentication, scopes, throttling, body limits, idempotency and cursor
pagination are infrastructure of `cdp.api`; consent's views use them through these
names only, so moving that machinery changes this file and nothing else.
"""

from __future__ import annotations

from cdp.api.pagination import paginate  # noqa: F401
from cdp.api.permissions import source_for_write  # noqa: F401
from cdp.api.schema import IDEMPOTENCY_HEADER, problems  # noqa: F401
from cdp.api.scopes import Scope  # noqa: F401
from cdp.api.services.idempotency import StoredResponse  # noqa: F401
from cdp.api.v1.views.base import ApiView, batch_limit, uuid_or_404, validated  # noqa: F401
