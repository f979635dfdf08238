from django.apps import AppConfig


class SegmentConfig(AppConfig):
    name = "cdp.segment"
    label = "segment"
    verbose_name = "Segment tracking API"
    default_auto_field = "django.db.models.BigAutoField"
