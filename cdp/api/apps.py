from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "cdp.api"
    label = "api"
    verbose_name = "Integrator API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the bearer security scheme with drf-spectacular.
        from cdp.api import schema  # noqa: F401
