from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent and compliance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported in ready(): apps.py loads before the models these modules use.
        from cdp.core.outbox import outbox_sweep_register
        from consent import checks  # noqa: F401 - registers the deploy checks
        from consent.services.dsr import dsr_process_pending

        # Beat's DSR sweep, for the in-process mode (no broker, no beat).
        outbox_sweep_register(dsr_process_pending)
