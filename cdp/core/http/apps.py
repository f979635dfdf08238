from django.apps import AppConfig


class HttpConfig(AppConfig):
    name = "cdp.core.http"
    # The label the API keys' tables, migrations and admin URLs were created under (as
    # `cdp.api`), kept so that moving the infrastructure below the domains changed no row.
    label = "api"
    verbose_name = "Integrator API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the bearer security scheme with drf-spectacular.
        from cdp.core.http import schema  # noqa: F401
