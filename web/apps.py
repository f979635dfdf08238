from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Web pages (preference center, compliance console, ops dashboard)"
    default_auto_field = "django.db.models.BigAutoField"
