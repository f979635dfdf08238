from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Consent calls these inside its own transaction: a withdrawal of a campaign's purpose
        # takes the person out of it at once; erasure, merges and access export reach assignments.
        from campaigns.services import consent_hooks
        from consent import registry

        registry.register(registry.WITHDRAWAL, consent_hooks.campaigns_withdrawal_handle)
        registry.register(registry.ERASE, consent_hooks.campaigns_profile_erase)
        registry.register(registry.EXPORT, consent_hooks.campaigns_profile_export)
        registry.register(registry.PROFILES_MERGED, consent_hooks.campaigns_profiles_merged)
