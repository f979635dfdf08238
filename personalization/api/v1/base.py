"""The one place personalization's API borrows the integrator API's HTTP machinery.

Bearer-key authentication, scopes, throttling and problem+json errors (with their codes)
belong to `cdp.api`; moving them changes this file and nothing else.
"""

from cdp.api.errors import ApiErrorCode  # noqa: F401
from cdp.api.permissions import key_boundary, profile_visible_check  # noqa: F401
from cdp.api.schema import problems  # noqa: F401
from cdp.api.scopes import Scope  # noqa: F401
from cdp.api.v1.views.base import ApiView, uuid_or_404  # noqa: F401
