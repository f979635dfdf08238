from django.apps import AppConfig


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Profiles"
    default_auto_field = "django.db.models.BigAutoField"
