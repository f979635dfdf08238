from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "cdp.core"
    label = "core"
    verbose_name = "Infrastructure"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_finished, request_started

        from cdp.core import outbox

        # Outbox wake-ups of a request run once, when it has been answered.
        request_started.connect(outbox.request_started_handler, dispatch_uid="outbox_request_started")
        request_finished.connect(outbox.request_finished_handler, dispatch_uid="outbox_request_finished")
