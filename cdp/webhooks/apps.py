from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "cdp.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported in ready(): apps.py loads before the models these modules use.
        from cdp.core.outbox import outbox_listen, outbox_sweep_register
        from cdp.webhooks.tasks import relay_sweep, relay_wake

        # After each commit that wrote outbox rows, wake the relay (beat sweeps too; with
        # tasks in-process, the in-process sweep does).
        outbox_listen(relay_wake)
        outbox_sweep_register(relay_sweep)
