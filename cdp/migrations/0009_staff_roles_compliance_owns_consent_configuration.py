"""Staff roles on existing deployments: compliance officers own the consent configuration
(legal bases, notices, retention and DSR approval rules), operators may only read it.

New staff get their group's permissions from cdp.staff.role_group; this brings groups
made before the change up to date, and lets existing compliance officers into the admin
(which shows them only the consent configuration). The lists are frozen here on purpose:
a migration must do the same thing whenever it runs.
"""

from django.db import migrations

VIEW = ["view_purposebasis", "view_noticeversion", "view_noticetext", "view_retentionrule", "view_dsrapprovalrule"]
EDIT = ["add_purposebasis", "change_purposebasis", "add_noticeversion", "add_noticetext",
        "add_retentionrule", "change_retentionrule", "add_dsrapprovalrule", "change_dsrapprovalrule"]


def _ensure_permissions(apps):
    """Permissions are made after migrations (post_migrate): make consent's now if needed."""
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("consent")
    app_config.models_module = True  # historical app configs have none; create_permissions skips those
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None


def forwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("auth", "User")
    groups = {group.name: group for group in Group.objects.filter(name__in=["operator", "compliance"])}
    if not groups:
        return  # a new installation: create_staff gives each group its permissions
    _ensure_permissions(apps)
    consent = {p.codename: p for p in Permission.objects.filter(content_type__app_label="consent")}
    if "operator" in groups:
        groups["operator"].permissions.remove(*[consent[code] for code in EDIT])
        groups["operator"].permissions.add(*[consent[code] for code in VIEW])
    if "compliance" in groups:
        groups["compliance"].permissions.add(*[consent[code] for code in VIEW + EDIT])
        User.objects.filter(groups=groups["compliance"]).update(is_staff=True)


class Migration(migrations.Migration):

    dependencies = [
        ("cdp", "0008_identifier_provenance"),
        ("consent", "0004_ledger_verification"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
