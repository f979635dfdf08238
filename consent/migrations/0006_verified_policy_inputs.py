"""Everything the consent policy reads becomes verifiable.

* Chain heads carry the subject's jurisdiction (and how often it changed) under their
  MAC. Existing heads whose MAC is valid are re-MAC'd with the jurisdiction their Subject
  row holds now; a head that fails its MAC is left alone, for the verifier to report.
* The purpose bases and notice versions in place now become the first entry of the
  configuration chain (PolicyConfigEvent), append-only in PostgreSQL like the ledger.
* Checkpoint rows get a key id and a signature (checkpoints are signed with Ed25519 now).

Both data steps take the state found at upgrade as their starting point: they cannot tell
whether it was tampered with before this release (which did not check it).
"""

import hashlib
import hmac
import json

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def _mac_v1_head(key, profile_id, length, last_link):
    def part(value):
        data = str(value).encode()
        return len(data).to_bytes(4, "big") + data

    body = b"tessera:consent-head:v1" + b"".join(map(part, (str(profile_id), length, last_link)))
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def heads_upgrade(apps, schema_editor):
    from consent.ledger import genesis_link, head_mac

    ChainHead = apps.get_model("consent", "ChainHead")
    Subject = apps.get_model("consent", "Subject")
    key = settings.TESSERA_LEDGER_KEY
    where = dict(Subject.objects.values_list("profile_id", "jurisdiction"))
    for head in ChainHead.objects.order_by("profile_id").iterator(chunk_size=5000):
        # Heads from 0003's backfill already use the current MAC (with the default jurisdiction).
        if not (hmac.compare_digest(head.mac, _mac_v1_head(key, head.profile_id, head.length, head.last_link))
                or hmac.compare_digest(head.mac, head_mac(head.profile_id, head.length, head.last_link, key=key))):
            continue
        head.jurisdiction, head.jurisdiction_changes = where.pop(head.profile_id, "*"), 0
        head.mac = head_mac(head.profile_id, head.length, head.last_link, head.jurisdiction, 0, key=key)
        head.save(update_fields=["jurisdiction", "jurisdiction_changes", "mac"])
    now = timezone.now()
    ChainHead.objects.bulk_create([
        ChainHead(profile_id=pid, length=0, last_link=(link := genesis_link(pid, key=key)), jurisdiction=where[pid],
                  jurisdiction_changes=0, mac=head_mac(pid, 0, link, where[pid], 0, key=key), updated_at=now)
        for pid in where if where[pid] != "*" and not ChainHead.objects.filter(profile_id=pid).exists()])


def configuration_baseline(apps, schema_editor):
    from consent.ledger import config

    PurposeBasis = apps.get_model("consent", "PurposeBasis")
    NoticeVersion = apps.get_model("consent", "NoticeVersion")
    PolicyConfigEvent = apps.get_model("consent", "PolicyConfigEvent")
    PolicyConfigHead = apps.get_model("consent", "PolicyConfigHead")
    bases = sorted(list(row) for row in PurposeBasis.objects.values_list("purpose", "jurisdiction", "basis"))
    notices = sorted(list(row) for row in NoticeVersion.objects.values_list(
        "purpose", "version", "material", "lifetime_days"))
    if not bases and not notices:
        return
    key, now = settings.TESSERA_LEDGER_KEY, timezone.now()
    snapshot = json.dumps({"bases": bases, "notices": notices}, separators=(",", ":"))
    link = config.config_link(1, "baseline", "migration", now, snapshot, config.config_genesis(key), key)
    PolicyConfigEvent.objects.create(seq=1, action="baseline", actor="migration", recorded_at=now, snapshot=snapshot,
                                     link=link)
    PolicyConfigHead.objects.create(id=1, length=1, last_link=link, mac=config.config_head_mac(1, link, key),
                                    updated_at=now)


def trigger_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # tessera_refuse_change() comes from 0003
        schema_editor.execute("CREATE TRIGGER consent_policyconfigevent_append_only BEFORE UPDATE OR DELETE ON "
                              "consent_policyconfigevent FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change()")


def trigger_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS consent_policyconfigevent_append_only ON "
                              "consent_policyconfigevent")


class Migration(migrations.Migration):

    dependencies = [
        ('consent', '0005_dsr_filed_by_key'),
    ]

    operations = [
        migrations.CreateModel(
            name='PolicyConfigEvent',
            fields=[
                ('seq', models.PositiveBigIntegerField(help_text='Position in the chain, from 1.', primary_key=True, serialize=False)),
                ('action', models.CharField(max_length=32)),
                ('actor', models.CharField(max_length=120)),
                ('recorded_at', models.DateTimeField()),
                ('snapshot', models.TextField(help_text='Canonical JSON of every purpose basis and notice version.')),
                ('link', models.CharField(max_length=64)),
            ],
            options={
                'abstract': False,
            },
        ),
        migrations.CreateModel(
            name='PolicyConfigHead',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ('length', models.PositiveBigIntegerField(default=0)),
                ('last_link', models.CharField(max_length=64)),
                ('mac', models.CharField(max_length=64)),
                ('updated_at', models.DateTimeField()),
            ],
        ),
        migrations.AddField(
            model_name='chainhead',
            name='jurisdiction',
            field=models.CharField(default='*', max_length=16),
        ),
        migrations.AddField(
            model_name='chainhead',
            name='jurisdiction_changes',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='ledgercheckpoint',
            name='key_id',
            field=models.CharField(blank=True, help_text='Which checkpoint signing key signed it.', max_length=16),
        ),
        migrations.AddField(
            model_name='ledgercheckpoint',
            name='signature',
            field=models.CharField(blank=True, help_text='Ed25519 signature, base64.', max_length=100),
        ),
        migrations.AlterField(
            model_name='ledgercheckpoint',
            name='mac',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(heads_upgrade, migrations.RunPython.noop),
        migrations.RunPython(configuration_baseline, migrations.RunPython.noop),
        migrations.RunPython(trigger_create, trigger_drop),
    ]
