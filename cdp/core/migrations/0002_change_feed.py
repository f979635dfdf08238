"""Change feed: a public event id and a commit-ordered position on each outbox row."""

import uuid

from django.db import migrations, models


def give_event_ids(apps, schema_editor):
    # A callable default is evaluated once by AddField, so existing rows get their own here.
    OutboxMessage = apps.get_model("core", "OutboxMessage")
    for message in OutboxMessage.objects.filter(event_id__isnull=True).only("id").iterator():
        OutboxMessage.objects.filter(pk=message.pk).update(event_id=uuid.uuid4())


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxmessage",
            name="event_id",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(give_event_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="outboxmessage",
            name="event_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="position",
            field=models.BigIntegerField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(condition=models.Q(("position__isnull", True)), fields=["id"],
                               name="outbox_unstamped_idx"),
        ),
        migrations.CreateModel(
            name="OutboxSequence",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("last_position", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="OutboxConsumer",
            fields=[
                ("name", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("position", models.BigIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
