"""`Authorization: Bearer tsk_...` authentication for the integrator API."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from cdp.core.http.keys import KeyRejected, api_key_authenticate


class ApiKeyAuthentication(BaseAuthentication):
    """Sets `request.auth` to the ApiKey; `request.user` stays None (keys are not users).

    No header means "not authenticated" (the permission answers 401); a malformed,
    unknown, expired or revoked key fails at once with 401 and `WWW-Authenticate: Bearer`.
    """

    keyword = b"bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword or len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the API key as 'Authorization: Bearer KEY'.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The API key is not valid.") from None
        try:
            return None, api_key_authenticate(token)
        except KeyRejected as rejected:
            raise exceptions.AuthenticationFailed(str(rejected)) from None

    def authenticate_header(self, request) -> str:
        return "Bearer"
