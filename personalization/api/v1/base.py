"""The one place personalization's API borrows the integrator API's HTTP machinery.

Bearer-key authentication, scopes, throttling, problem+json errors and cursor encoding
belong to `cdp.api`; moving them changes this file and nothing else.
"""

from cdp.api.access import record_personal_data_access  # noqa: F401
from cdp.api.pagination import cursor_decode, cursor_encode, page_limit  # noqa: F401
from cdp.api.permissions import key_boundary, profile_visible_check  # noqa: F401
from cdp.api.schema import problems  # noqa: F401
from cdp.api.scopes import Scope  # noqa: F401
from cdp.api.v1.views.base import ApiView, uuid_or_404  # noqa: F401
