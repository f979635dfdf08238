"""The consent ledger is tamper-evident: every kind of raw-SQL tampering is found and named."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from consent.ledger import checkpoint_parse, ledger_checkpoint_create, ledger_verify
from consent.models import AppendOnlyError, ChainHead, ConsentEvent, ConsentState
from consent.services import consent_set

pytestmark = pytest.mark.django_db


def history(profile_id, purposes=("analytics", "marketing", "personalization", "analytics")):
    granted = True
    for purpose in purposes:
        consent_set(profile_id=profile_id, purpose=purpose, granted=granted, channel="api", actor="test")
        granted = not granted
    return list(ConsentEvent.objects.filter(profile_id=profile_id).order_by("seq"))


def sql(statement: str, params=()) -> None:
    """Tampering as the database owner would: triggers off, raw SQL, triggers back on."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consent_consentevent DISABLE TRIGGER USER")
        cursor.execute(statement, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consent_consentevent ENABLE TRIGGER USER")


def pk(value: uuid.UUID):
    return value if connection.vendor == "postgresql" else value.hex


def test_an_untouched_ledger_verifies():
    a, b = uuid.uuid4(), uuid.uuid4()
    history(a)
    history(b, purposes=("sale_sharing",))
    report = ledger_verify()
    assert report.intact, report.finding
    assert (report.subjects, report.events, report.states) == (2, 5, 4)


def test_an_edited_row_is_named():
    events = history(uuid.uuid4())
    sql("UPDATE consent_consentevent SET granted = %s WHERE id = %s", [True, pk(events[1].id)])
    finding = ledger_verify().finding
    assert finding.code == "link_invalid"
    assert finding.event_id == str(events[1].id) and finding.position == 2
    assert str(events[1].id) in finding.message


def test_a_deleted_row_is_named_by_the_event_after_it():
    events = history(uuid.uuid4())
    sql("DELETE FROM consent_consentevent WHERE id = %s", [pk(events[1].id)])
    finding = ledger_verify().finding
    assert finding.code == "event_deleted"
    assert finding.event_id == str(events[2].id)
    assert "event 2 of this chain was deleted" in finding.message


def test_a_deleted_tail_is_found_through_the_head():
    profile_id = uuid.uuid4()
    events = history(profile_id)
    sql("DELETE FROM consent_consentevent WHERE id = %s", [pk(events[-1].id)])
    finding = ledger_verify().finding
    assert finding.code == "tail_deleted"
    assert finding.profile_id == str(profile_id) and finding.position == 4
    assert str(profile_id) in finding.message


def test_a_reordered_pair_is_named():
    events = history(uuid.uuid4())
    second, third = events[1], events[2]
    sql("UPDATE consent_consentevent SET seq = 1000 WHERE id = %s", [pk(second.id)])
    sql("UPDATE consent_consentevent SET seq = 2 WHERE id = %s", [pk(third.id)])
    sql("UPDATE consent_consentevent SET seq = 3 WHERE id = %s", [pk(second.id)])
    finding = ledger_verify().finding
    assert finding.code == "link_invalid"
    assert finding.event_id == str(third.id) and finding.position == 2


def test_an_inserted_row_is_named():
    profile_id = uuid.uuid4()
    events = history(profile_id)
    sql("UPDATE consent_consentevent SET seq = seq + 100 WHERE profile_id = %s AND seq >= 2", [pk(profile_id)])
    sql("UPDATE consent_consentevent SET seq = seq - 99 WHERE profile_id = %s AND seq >= 100", [pk(profile_id)])
    forged = uuid.uuid4()
    first = events[0]
    sql("INSERT INTO consent_consentevent (id, profile_id, seq, purpose, granted, notice_version, basis, channel, "
        "actor, source, jurisdiction, language, ip_hash, user_agent_hash, occurred_at, recorded_at, link) "
        "SELECT %s, profile_id, 2, 'sale_sharing', %s, notice_version, basis, channel, actor, source, jurisdiction, "
        "language, ip_hash, user_agent_hash, occurred_at, recorded_at, link FROM consent_consentevent WHERE id = %s",
        [pk(forged), True, pk(first.id)])
    finding = ledger_verify().finding
    assert finding.code == "link_invalid"
    assert finding.event_id == str(forged) and finding.position == 2


def test_a_chain_rewritten_with_a_recomputed_plain_hash_is_named_at_its_first_event():
    """Someone without the ledger key rewrites a whole chain (every consent now granted) and
    recomputes every link and the head with SHA-256: the very first event fails."""
    profile_id = uuid.uuid4()
    events = history(profile_id)
    previous = hashlib.sha256(str(profile_id).encode()).hexdigest()
    for event in events:
        link = hashlib.sha256(f"{previous}|{event.id}|{event.seq}|{event.purpose}|True".encode()).hexdigest()
        sql("UPDATE consent_consentevent SET granted = %s, link = %s WHERE id = %s", [True, link, pk(event.id)])
        previous = link
    head_mac = hashlib.sha256(f"{profile_id}|{len(events)}|{previous}".encode()).hexdigest()
    ChainHead.objects.filter(profile_id=profile_id).update(last_link=previous, mac=head_mac)
    ConsentState.objects.filter(profile_id=profile_id).update(granted=True)
    finding = ledger_verify().finding
    assert finding.code == "link_invalid"
    assert finding.event_id == str(events[0].id) and finding.position == 1


def test_an_altered_state_or_head_is_found():
    profile_id = uuid.uuid4()
    history(profile_id)
    ConsentState.objects.filter(profile_id=profile_id, purpose="marketing").update(granted=True)
    assert ledger_verify().finding.code == "state_mismatch"
    ConsentState.objects.filter(profile_id=profile_id, purpose="marketing").update(granted=False)
    assert ledger_verify().intact
    ChainHead.objects.filter(profile_id=profile_id).update(length=3)
    assert ledger_verify().finding.code == "head_forged"


def test_deleting_a_whole_chain_or_rolling_heads_back_is_found_against_a_checkpoint():
    kept, deleted, rolled = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for subject in (kept, deleted, rolled):
        history(subject)
    _, text = ledger_checkpoint_create()
    checkpoint = checkpoint_parse(text)
    assert ledger_verify(checkpoint=checkpoint).intact
    # Roll one subject back: its newest event goes, and its head is restored from an older copy.
    old_head = ChainHead.objects.get(profile_id=rolled)
    events = list(ConsentEvent.objects.filter(profile_id=rolled).order_by("seq"))
    sql("DELETE FROM consent_consentevent WHERE id = %s", [pk(events[-1].id)])
    previous = events[-2]
    from consent.ledger import head_mac

    # The attacker replays a head value the system itself once wrote (MAC valid).
    ChainHead.objects.filter(profile_id=rolled).update(length=3, last_link=previous.link,
                                                        mac=head_mac(rolled, 3, previous.link))
    first = ConsentEvent.objects.get(profile_id=rolled, seq=1)
    ConsentState.objects.filter(profile_id=rolled, purpose="analytics").update(
        granted=True, event_id=first.id, updated_at=first.occurred_at)
    assert old_head.length == 4
    assert ledger_verify().intact  # consistent inside the database...
    finding = ledger_verify(checkpoint=checkpoint).finding  # ...but not with the checkpoint
    assert finding.code == "chain_rolled_back" and finding.profile_id == str(rolled)
    # Put it back and delete a whole chain with its head and states instead.
    sql("DELETE FROM consent_consentevent WHERE profile_id = %s", [pk(deleted)])
    ChainHead.objects.filter(profile_id=deleted).delete()
    ConsentState.objects.filter(profile_id=deleted).delete()
    finding = ledger_verify(checkpoint={"created_at": checkpoint["created_at"],
                                        "heads": {deleted: checkpoint["heads"][deleted]}}).finding
    assert finding.code == "chain_deleted" and finding.profile_id == str(deleted)


def test_a_forged_checkpoint_file_is_refused():
    history(uuid.uuid4())
    _, text = ledger_checkpoint_create()
    lines = text.splitlines()
    lines[1] = lines[1].replace('"n":4', '"n":5')
    from consent.ledger import CheckpointInvalid

    with pytest.raises(CheckpointInvalid):
        checkpoint_parse("\n".join(lines))


def test_updates_and_deletes_through_the_orm_are_refused():
    [event, *_] = history(uuid.uuid4())
    with pytest.raises(AppendOnlyError):
        ConsentEvent.objects.filter(id=event.id).update(granted=False)
    with pytest.raises(AppendOnlyError):
        ConsentEvent.objects.filter(id=event.id).delete()
    with pytest.raises(AppendOnlyError):
        event.delete()
    event.granted = not event.granted
    with pytest.raises(AppendOnlyError):
        event.save()
    assert ledger_verify().intact


def test_updates_and_deletes_through_sql_are_refused_by_the_database(postgres):
    [event, *_] = history(uuid.uuid4())
    for statement in ("UPDATE consent_consentevent SET granted = NOT granted WHERE id = %s",
                      "DELETE FROM consent_consentevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [event.id])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM consent_accesslog")
        cursor.execute("INSERT INTO consent_accesslog (at, kind, actor, fields, purpose, detail) "
                       "VALUES (now(), 'read', 'x', '[]', 'p', '{}')")
        cursor.execute("UPDATE consent_accesslog SET actor = 'y'")
    assert ledger_verify().intact


def test_the_command_exits_0_when_intact_and_1_naming_the_first_broken_event(tmp_path, settings):
    settings.TESSERA_LEDGER_CHECKPOINT_DIR = str(tmp_path / "none")
    events = history(uuid.uuid4())
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_consent_ledger", stdout=out, stderr=err)
    assert "intact" in out.getvalue() and "4 events" in out.getvalue()
    sql("UPDATE consent_consentevent SET channel = 'gpc' WHERE id = %s", [pk(events[2].id)])
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_consent_ledger", stdout=out, stderr=(err := io.StringIO()))
    assert exit_info.value.code == 1
    message = err.getvalue().strip()
    assert len(message.splitlines()) == 1 and str(events[2].id) in message and "Traceback" not in message


def test_export_checkpoint_command_and_verification_against_the_file(tmp_path, settings):
    settings.TESSERA_LEDGER_CHECKPOINT_DIR = str(tmp_path)
    profile_id = uuid.uuid4()
    history(profile_id)
    out = io.StringIO()
    call_command("export_ledger_checkpoint", "--output", str(tmp_path / "checkpoint-1.jsonl"), stdout=out,
                 stderr=io.StringIO())
    assert out.getvalue().strip().endswith("checkpoint-1.jsonl")
    printed = io.StringIO()
    call_command("export_ledger_checkpoint", stdout=printed)
    assert checkpoint_parse(printed.getvalue())["heads"][profile_id][0] == 4
    sql("DELETE FROM consent_consentevent WHERE profile_id = %s", [pk(profile_id)])
    ChainHead.objects.filter(profile_id=profile_id).delete()
    ConsentState.objects.filter(profile_id=profile_id).delete()
    # Inside the database alone the deletion leaves no trace...
    call_command("verify_consent_ledger", "--no-checkpoint", stdout=io.StringIO(), stderr=io.StringIO())
    err = io.StringIO()
    with pytest.raises(SystemExit):  # the newest file in the checkpoint directory is used by default
        call_command("verify_consent_ledger", stdout=io.StringIO(), stderr=err)
    assert "whole chain was deleted" in err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_appends_for_different_people_do_not_wait_for_each_other(postgres):
    """One subject's head is locked by an open transaction; another subject's append goes through."""
    a, b = uuid.uuid4(), uuid.uuid4()
    consent_set(profile_id=a, purpose="analytics", granted=True)
    consent_set(profile_id=b, purpose="analytics", granted=True)
    holding, release, result = threading.Event(), threading.Event(), {}

    def hold_a():
        from django.db import connection as thread_connection

        with transaction.atomic():
            consent_set(profile_id=a, purpose="marketing", granted=True)
            holding.set()
            release.wait(10)
        thread_connection.close()

    def append_b():
        from django.db import connection as thread_connection

        with transaction.atomic():
            with thread_connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            result["b"] = consent_set(profile_id=b, purpose="marketing", granted=True)
        thread_connection.close()

    holder = threading.Thread(target=hold_a)
    holder.start()
    assert holding.wait(10)
    other = threading.Thread(target=append_b)
    other.start()
    other.join(15)
    release.set()
    holder.join(15)
    assert result.get("b") is True
    assert ledger_verify().intact


def test_a_legacy_checkpoint_macd_with_the_ledger_key_is_still_read_and_its_mac_checked(tmp_path, settings):
    from consent.checkpoint_signature import heads_digest
    from consent.ledger.chain import ledger_mac
    from consent.ledger.checkpoints import CHECKPOINT_LABEL

    settings.TESSERA_LEDGER_CHECKPOINT_DIR = str(tmp_path)
    profile_id = uuid.uuid4()
    events = history(profile_id)
    line = json.dumps({"s": str(profile_id), "n": 4, "l": events[-1].link}, separators=(",", ":"))
    digest = heads_digest([line])
    created = "2026-01-01T00:00:00.000000Z"
    mac = ledger_mac(settings.TESSERA_LEDGER_KEY, CHECKPOINT_LABEL, created, 1, 4, digest)
    header = json.dumps({"format": "tessera-ledger-checkpoint/1", "created_at": created, "subjects": 1, "events": 4,
                         "digest": digest, "mac": mac}, separators=(",", ":"))
    legacy = tmp_path / "checkpoint-20260101T000000000000Z.jsonl"
    legacy.write_text(f"{header}\n{line}\n")
    parsed = checkpoint_parse(legacy.read_text())
    assert parsed["signed"] is False and parsed["heads"][profile_id][:2] == (4, events[-1].link)
    out = io.StringIO()
    call_command("verify_consent_ledger", stdout=out)  # the only file: used by default
    assert "legacy checkpoint" in out.getvalue()
    from consent.ledger import CheckpointInvalid

    with pytest.raises(CheckpointInvalid, match="MAC"):
        checkpoint_parse(legacy.read_text().replace('"n":4', '"n":5'))
    # Once a signed checkpoint exists, it is the one used by default.
    call_command("export_ledger_checkpoint", "--output", str(tmp_path / "checkpoint-20270101T000000000000Z.jsonl"),
                 stdout=io.StringIO(), stderr=io.StringIO())
    call_command("verify_consent_ledger", stdout=(out := io.StringIO()))
    assert "signed by key" in out.getvalue()


def test_no_signing_key_on_this_host_means_no_checkpoint_written(tmp_path, settings):
    from consent.tasks import ledger_checkpoint_create as task

    settings.TESSERA_LEDGER_CHECKPOINT_DIR = str(tmp_path)
    settings.TESSERA_CHECKPOINT_SIGNING_KEY = None
    history(uuid.uuid4())
    assert task.apply().get() is None and not list(tmp_path.iterdir())
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("export_ledger_checkpoint", stdout=io.StringIO(), stderr=err)
    assert "TESSERA_CHECKPOINT_SIGNING_KEY" in err.getvalue()


def test_the_configuration_history_refuses_sql_updates_and_deletes(postgres):
    from consent.models import PolicyConfigEvent
    from consent.notices import purpose_basis_set

    purpose_basis_set(purpose="marketing", jurisdiction="EU", basis="legitimate_interest", actor="test")
    assert PolicyConfigEvent.objects.exists()
    for statement in ("UPDATE consent_policyconfigevent SET actor = 'x'", "DELETE FROM consent_policyconfigevent"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert ledger_verify().intact
