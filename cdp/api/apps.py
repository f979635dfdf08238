from django.apps import AppConfig


class IntegratorApiConfig(AppConfig):
    """The profile API's views, the API keys' admin and `create_api_key` (no models of its
    own: the keys live in the HTTP layer, `cdp.core.http`, app label `api`)."""

    name = "cdp.api"
    label = "integrator_api"
    verbose_name = "Integrator API"
