from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Web pages (preference center, compliance console, ops dashboard)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported in ready(): apps.py loads before the models these modules use.
        from cdp.core.observability import register_secret_path
        from consent.services.signin import SIGN_IN_PATH

        # The magic link's token signs a person in: logs, Referers and metrics never see it.
        register_secret_path(SIGN_IN_PATH)
