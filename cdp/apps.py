from django.apps import AppConfig


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Profiles"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported in ready(): apps.py loads before the models these modules use.
        # The profile domain's handlers for consent work (DSRs, retention, withdrawal).
        from cdp import consent_handlers
        from cdp.core.http.permissions import Boundary, boundary_register
        from cdp.core.outbox import outbox_sweep_register
        from cdp.selectors import profiles_contributed_by_source, source_by_key
        from cdp.services.event_partitions import event_partitions_ensure

        consent_handlers.register()
        # What the HTTP layer (below the domains) may ask about sources and the people they contributed.
        boundary_register(Boundary(source_by_key=source_by_key, profiles_of_source=profiles_contributed_by_source))
        # Without beat (tasks in-process), web processes make the coming months' event
        # partitions (PostgreSQL) in their periodic sweep.
        outbox_sweep_register(event_partitions_ensure)
