"""Operators read the Segment ingestion-error log in the admin (the docs sent them there,
and they got 403). New staff get it from cdp.staff.role_group; this updates the operator
group of existing deployments. Frozen on purpose: a migration does the same whenever it runs."""

from django.db import migrations


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="operator").first()
    if group is None:
        return  # a new installation: create_staff gives the group its permissions
    app_config = apps.get_app_config("segment")
    app_config.models_module = True  # historical app configs have none; create_permissions skips those
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None
    group.permissions.add(Permission.objects.get(content_type__app_label="segment", codename="view_ingestionerror"))


class Migration(migrations.Migration):

    dependencies = [
        ("segment", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
