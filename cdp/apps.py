from django.apps import AppConfig


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Profiles"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The profile domain's handlers for consent work (DSRs, retention, withdrawal).
        from cdp import consent_handlers

        consent_handlers.register()
        # Without beat (tasks in-process), web processes make the coming months' event
        # partitions (PostgreSQL) in their periodic sweep.
        from cdp.core.outbox import outbox_sweep_register
        from cdp.services.event_partitions import event_partitions_ensure

        outbox_sweep_register(event_partitions_ensure)
