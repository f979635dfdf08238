from django.apps import AppConfig


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Profiles"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported in ready(): apps.py loads before the models these modules use.
        # The profile domain's handlers for consent work (DSRs, retention, withdrawal).
        from cdp import consent_handlers

        consent_handlers.register()
