from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="UsedSignInLink",
            fields=[
                ("token_hash", models.CharField(help_text="SHA-256 of the link's token.", max_length=64,
                                                primary_key=True, serialize=False)),
                ("used_at", models.DateTimeField(db_index=True)),
            ],
        ),
    ]
