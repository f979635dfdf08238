"""HTTP infrastructure every app's API builds on, below the domains.

Bearer API keys (their models, authentication and scopes), the key boundary, throttling,
body limits, cursor pagination, Idempotency-Key handling, the OpenAPI pieces, the base
API view and the one problem+json error handler. Like the rest of `cdp.core`, nothing
here imports an app of ours (the import-linter contracts in pyproject.toml check it).

What only the profile domain knows (which sources exist, which people a source
contributed) reaches it through `boundary.boundary_register`, which `cdp` calls at
start-up; the rest of the API keys' life (creating and revoking them, with an audit row
in consent's log) is `cdp.api.services.api_keys`, above consent.
"""
