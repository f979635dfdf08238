from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    name = "personalization"
    verbose_name = "Personalization"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported in ready(): apps.py loads before the models these modules use.
        # Consent calls these inside its own transaction: withdrawal, erasure, merge and
        # access export reach the data this app derived.
        from cdp.core.event_hooks import events_listen
        from cdp.core.outbox import outbox_sweep_register
        from consent import registry
        from personalization.services import cleanup, realtime, realtime_pending

        registry.register(registry.WITHDRAWAL, cleanup.personalization_withdrawal_handle)
        registry.register(registry.ERASE, cleanup.personalization_profile_erase)
        registry.register(registry.PROFILES_MERGED, cleanup.personalization_profiles_merged)
        registry.register(registry.EXPORT, cleanup.personalization_profile_export)
        # New events and a personalization grant refresh the person's recommendations.
        registry.register(registry.GRANT, realtime.personalization_grant_handle)
        events_listen(realtime_pending.events_refresh_schedule)
        outbox_sweep_register(realtime_pending.in_process_sweep)
