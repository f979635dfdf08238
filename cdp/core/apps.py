from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "cdp.core"
    label = "core"
    verbose_name = "Infrastructure"
    default_auto_field = "django.db.models.BigAutoField"

