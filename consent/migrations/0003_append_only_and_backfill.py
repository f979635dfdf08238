"""Append-only enforcement in PostgreSQL, and ledger events for states recorded before the ledger.

The triggers refuse UPDATE and DELETE on the consent ledger, the access log and the DSR
audit trail, whoever sends them (the ORM, raw SQL, psql). The database owner can still
disable a trigger: that is what the HMAC chain is for.

States written before the ledger existed (ConsentState without an event) each get one
event (channel `import`, actor `migration`), so the verifier finds every state backed.
"""

from django.db import migrations
from django.utils import timezone

APPEND_ONLY_TABLES = ("consent_consentevent", "consent_accesslog", "consent_dsrauditentry")

FUNCTION = """
CREATE OR REPLACE FUNCTION tessera_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'rows of %% are append-only: %% refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def triggers_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION)
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION tessera_refuse_change()")


def triggers_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS tessera_refuse_change()")


def backfill(apps, schema_editor):
    from consent.ledger import LINKED_FIELDS, event_link, genesis_link, head_mac

    ConsentState = apps.get_model("consent", "ConsentState")
    ConsentEvent = apps.get_model("consent", "ConsentEvent")
    ChainHead = apps.get_model("consent", "ChainHead")
    heads = {}
    now = timezone.now()
    for state in ConsentState.objects.filter(event_id__isnull=True).order_by("profile_id", "purpose"):
        head = heads.get(state.profile_id)
        if head is None:
            link = genesis_link(state.profile_id)
            head = heads[state.profile_id] = ChainHead(profile_id=state.profile_id, length=0, last_link=link,
                                                       mac=head_mac(state.profile_id, 0, link), updated_at=now)
        event = ConsentEvent(profile_id=state.profile_id, seq=head.length + 1, purpose=state.purpose,
                             granted=state.granted, notice_version=state.notice_version, basis="consent",
                             channel="import", actor="migration", source="", jurisdiction="", language="",
                             ip_hash="", user_agent_hash="", occurred_at=state.updated_at, recorded_at=now)
        # getattr's default: the historical model predates fields linked since (the evidence note).
        event.link = event_link({name: getattr(event, name, "") for name in LINKED_FIELDS}, head.last_link)
        event.save(force_insert=True)
        head.length, head.last_link = event.seq, event.link
        head.mac = head_mac(head.profile_id, head.length, head.last_link)
        ConsentState.objects.filter(pk=state.pk).update(event_id=event.id)
    ChainHead.objects.bulk_create(heads.values())


class Migration(migrations.Migration):

    dependencies = [
        ("consent", "0002_ledger_notices_dsr_access"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(triggers_create, triggers_drop),
    ]
