"""Issue 14, finding 6: the ledger verifier checks everything the consent policy reads.

Attackers: a database writer without keys (raw SQL on the tables the policy reads:
consent states, subjects' jurisdictions, purpose bases, notice versions), and a database
writer who also holds the ledger key (rewrites a chain with valid HMACs and plants a
checkpoint MAC'd with that key). Checkpoints are signed with an Ed25519 key whose private
half that writer does not hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from consent import policy
from consent.ledger import event_link, genesis_link, head_mac, ledger_verify
from consent.models import ChainHead, ConsentEvent, ConsentState
from consent.notices import notice_publish, purpose_basis_set
from consent.services import consent_set
from consent.services.consents import ConsentChange, consents_record

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def pk(value: uuid.UUID):
    return value if connection.vendor == "postgresql" else value.hex


def sql(statement: str, params=()) -> None:
    """Tampering as the database owner would: append-only triggers off, raw SQL, back on."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consent_consentevent DISABLE TRIGGER USER")
        cursor.execute(statement, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consent_consentevent ENABLE TRIGGER USER")


def verify_command(*args) -> tuple[int, str]:
    """(exit code, the one line it wrote) of verify_consent_ledger."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_consent_ledger", *args, stdout=out, stderr=err)
    except SystemExit as exit_info:
        return exit_info.code, err.getvalue().strip()
    return 0, out.getvalue().strip()


def raw_key(private: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    return (private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


@pytest.fixture
def checkpoints(settings, tmp_path):
    """A checkpoint directory and a fresh signing key pair, as production configures them."""
    signing, public = raw_key(Ed25519PrivateKey.generate())
    settings.TESSERA_LEDGER_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    settings.TESSERA_CHECKPOINT_SIGNING_KEY = signing
    settings.TESSERA_CHECKPOINT_PUBLIC_KEY = public
    return tmp_path / "checkpoints"


@pytest.fixture
def no_checkpoints(settings, tmp_path):
    settings.TESSERA_LEDGER_CHECKPOINT_DIR = str(tmp_path / "none")


def beat_checkpoint() -> Path:
    """Run the task beat schedules for checkpoints; the file it wrote."""
    assert any(entry["task"] == "consent.ledger_checkpoint_create"
               for entry in django_settings.CELERY_BEAT_SCHEDULE.values())
    from consent.tasks import ledger_checkpoint_create

    return Path(ledger_checkpoint_create.apply().get())


def test_sql_update_of_a_grants_expiry_is_detected(no_checkpoints):
    notice_publish(purpose="analytics", texts={"en": ("Analytics", "Yearly.")}, lifetime_days=365, actor="test")
    person, other = uuid.uuid4(), uuid.uuid4()
    consent_set(profile_id=person, purpose="analytics", granted=True, channel="api", actor="test")
    consent_set(profile_id=other, purpose="analytics", granted=True, channel="api", actor="test")
    assert policy.is_allowed(person, "analytics")
    assert verify_command()[0] == 0
    sql("UPDATE consent_consentstate SET expires_at = %s WHERE profile_id = %s",
        [timezone.now() - timedelta(days=1), pk(person)])
    assert not policy.is_allowed(person, "analytics")  # the tampering changes the decision...
    code, message = verify_command()
    assert code == 1 and str(person) in message and "Traceback" not in message  # ...and is named
    assert len(message.splitlines()) == 1
    assert ledger_verify().finding.code == "state_mismatch"
    # The other way round: an expiry pushed out (or removed) keeps a lapsed grant alive.
    sql("UPDATE consent_consentstate SET expires_at = NULL WHERE profile_id = %s", [pk(person)])
    assert ledger_verify().finding.profile_id == str(person)
    sql("UPDATE consent_consentstate SET expires_at = %s WHERE profile_id = %s",
        [timezone.now() + timedelta(days=3650), pk(other)])
    assert ledger_verify().finding.profile_id in {str(person), str(other)}


def test_sql_update_of_a_states_time_that_makes_later_withdrawals_stale_is_detected(no_checkpoints):
    person = uuid.uuid4()
    consent_set(profile_id=person, purpose="marketing", granted=True, channel="api", actor="test")
    sql("UPDATE consent_consentstate SET updated_at = %s WHERE profile_id = %s",
        [timezone.now() + timedelta(days=3650), pk(person)])
    # A withdrawal now looks older than the state in force and is skipped as stale.
    assert consent_set(profile_id=person, purpose="marketing", granted=False, channel="api", actor="test") is False
    finding = ledger_verify().finding
    assert finding is not None and finding.profile_id == str(person)


def test_sql_change_of_a_subjects_jurisdiction_is_detected(no_checkpoints):
    purpose_basis_set(purpose="marketing", jurisdiction="EU", basis="legitimate_interest", actor="test")
    person = uuid.uuid4()
    consents_record(profile_id=person, changes=[ConsentChange("analytics", True)], channel="api", actor="test",
                    jurisdiction="GB")
    assert not policy.is_allowed(person, "marketing")
    assert verify_command()[0] == 0
    sql("UPDATE consent_subject SET jurisdiction = 'EU' WHERE profile_id = %s", [pk(person)])
    assert policy.is_allowed(person, "marketing")  # opted in without ever being asked
    code, message = verify_command()
    assert code == 1 and str(person) in message and "jurisdiction" in message
    # Deleting the row (the subject falls back to the default jurisdiction) is found too.
    sql("UPDATE consent_subject SET jurisdiction = 'GB' WHERE profile_id = %s", [pk(person)])
    assert verify_command()[0] == 0
    sql("DELETE FROM consent_subject WHERE profile_id = %s", [pk(person)])
    assert ledger_verify().finding.profile_id == str(person)
    # And a subject row planted for someone without a chain.
    sql("INSERT INTO consent_subject (profile_id, jurisdiction, updated_at) VALUES (%s, 'EU', %s)",
        [pk(uuid.uuid4()), timezone.now()])
    sql("INSERT INTO consent_subject (profile_id, jurisdiction, updated_at) VALUES (%s, 'GB', %s)",
        [pk(person), timezone.now()])
    assert ledger_verify().finding.code == "jurisdiction_mismatch"


def test_sql_change_of_a_purpose_basis_is_detected(no_checkpoints):
    purpose_basis_set(purpose="marketing", jurisdiction="EU", basis="consent", actor="test")
    person = uuid.uuid4()
    consent_set(profile_id=person, purpose="analytics", granted=True, channel="api", actor="test")
    assert not policy.is_allowed(person, "marketing")
    assert verify_command()[0] == 0
    # An insert: marketing becomes opt-out everywhere.
    sql("INSERT INTO consent_purposebasis (purpose, jurisdiction, basis, updated_at) "
        "VALUES ('marketing', '*', 'legitimate_interest', %s)", [timezone.now()])
    assert policy.is_allowed(person, "marketing")
    code, message = verify_command()
    assert code == 1 and "basis" in message.lower() and len(message.splitlines()) == 1
    sql("DELETE FROM consent_purposebasis WHERE jurisdiction = '*'")
    assert verify_command()[0] == 0
    # An update of an existing row, and a deletion.
    sql("UPDATE consent_purposebasis SET basis = 'contract' WHERE jurisdiction = 'EU'")
    assert ledger_verify().finding.code == "configuration_mismatch"
    sql("DELETE FROM consent_purposebasis")
    assert ledger_verify().finding.code == "configuration_mismatch"


def test_sql_change_of_a_notice_versions_material_flag_or_lifetime_is_detected(no_checkpoints):
    notice_publish(purpose="analytics", texts={"en": ("Analytics", "v2")}, material=True, actor="test")
    person = uuid.uuid4()
    consent_set(profile_id=person, purpose="analytics", granted=True, notice_version=1, channel="api",
                actor="test")
    assert not policy.is_allowed(person, "analytics")  # v2 is material: v1 grants need re-consent
    assert ledger_verify().intact
    sql("UPDATE consent_noticeversion SET material = %s WHERE purpose = 'analytics' AND version = 2", [False])
    assert policy.is_allowed(person, "analytics")
    assert ledger_verify().finding.code == "configuration_mismatch"
    sql("UPDATE consent_noticeversion SET material = %s WHERE purpose = 'analytics' AND version = 2", [True])
    assert ledger_verify().intact
    sql("UPDATE consent_noticeversion SET lifetime_days = 1 WHERE purpose = 'analytics' AND version = 2")
    assert ledger_verify().finding.code == "configuration_mismatch"


def _rewrite_with_the_ledger_key(profile_id) -> None:
    """What a holder of TESSERA_LEDGER_KEY can do: every event of a chain becomes a grant, with
    valid links, head MAC and matching states."""
    key = django_settings.TESSERA_LEDGER_KEY
    from consent.ledger import LINKED_FIELDS

    previous = genesis_link(profile_id, key=key)
    for event in ConsentEvent.objects.filter(profile_id=profile_id).order_by("seq"):
        event.granted = True
        link = event_link({name: getattr(event, name) for name in LINKED_FIELDS}, previous, key=key)
        sql("UPDATE consent_consentevent SET granted = %s, link = %s WHERE id = %s", [True, link, pk(event.id)])
        previous = link
    head = ChainHead.objects.get(profile_id=profile_id)
    ChainHead.objects.filter(profile_id=profile_id).update(last_link=previous,
                                                            mac=head_mac(profile_id, head.length, previous, key=key))
    ConsentState.objects.filter(profile_id=profile_id).update(granted=True)


def _heads_checkpoint_macd_with_the_ledger_key() -> str:
    """A checkpoint of today's heads in the format MAC'd with the ledger key (the attacker has it)."""
    def part(value) -> bytes:
        data = str(value).encode()
        return len(data).to_bytes(4, "big") + data

    lines = [json.dumps({"s": str(p), "n": n, "l": link}, separators=(",", ":")) for p, n, link in
             ChainHead.objects.filter(length__gt=0).order_by("profile_id").values_list(
                 "profile_id", "length", "last_link")]
    digest = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()
    created = "2999-01-01T00:00:00.000000Z"
    events = sum(json.loads(line)["n"] for line in lines)
    mac = hmac.new(django_settings.TESSERA_LEDGER_KEY, b"tessera:consent-checkpoint:v1" + b"".join(
        map(part, (created, len(lines), events, digest))), hashlib.sha256).hexdigest()
    header = json.dumps({"format": "tessera-ledger-checkpoint/1", "created_at": created, "subjects": len(lines),
                         "events": events, "digest": digest, "mac": mac}, separators=(",", ":"))
    return "\n".join([header, *lines]) + "\n"


def test_a_ledger_key_holder_rewriting_a_chain_is_found_by_the_newest_signed_checkpoint(checkpoints):
    victim, bystander = uuid.uuid4(), uuid.uuid4()
    for person in (victim, bystander):
        consent_set(profile_id=person, purpose="analytics", granted=True, channel="api", actor="test")
        consent_set(profile_id=person, purpose="marketing", granted=False, channel="api", actor="test")
    signed = beat_checkpoint()
    assert signed.parent == checkpoints
    _rewrite_with_the_ledger_key(victim)
    assert policy.is_allowed(victim, "marketing")
    assert verify_command("--no-checkpoint")[0] == 0  # consistent inside the database
    # The attacker also drops a checkpoint of the rewritten heads, MAC'd with the ledger key,
    # named to sort last (the store takes new files but keeps the old ones).
    (checkpoints / "checkpoint-29990101T000000000000Z.jsonl").write_text(_heads_checkpoint_macd_with_the_ledger_key())
    code, message = verify_command()  # no --checkpoint: the newest signed one is used
    assert code == 1, message
    assert str(victim) in message and "rewritten" in message


def test_a_checkpoint_forged_without_the_private_key_is_refused(checkpoints):
    person = uuid.uuid4()
    consent_set(profile_id=person, purpose="analytics", granted=True, channel="api", actor="test")
    consent_set(profile_id=person, purpose="analytics", granted=False, channel="api", actor="test")
    genuine = beat_checkpoint().read_text()
    header, *lines = genuine.splitlines()
    fields = json.loads(header)
    assert fields["signature"] and fields["key_id"]
    # Roll the checkpoint back to the first event and sign it with a key of one's own,
    # under the genuine key id.
    first = ConsentEvent.objects.get(profile_id=person, seq=1)
    lines = [json.dumps({**json.loads(line), "n": 1, "l": first.link}, separators=(",", ":")) for line in lines]
    fields["digest"] = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()
    fields["events"] = 1
    attacker = Ed25519PrivateKey.generate()
    unsigned = {k: v for k, v in fields.items() if k != "signature"}
    fields["signature"] = base64.b64encode(attacker.sign(json.dumps(
        unsigned, sort_keys=True, separators=(",", ":")).encode())).decode()
    forged = checkpoints / "forged.jsonl"
    forged.write_text("\n".join([json.dumps(fields), *lines]) + "\n")
    code, message = verify_command("--checkpoint", str(forged))
    assert code == 1 and "signature" in message and len(message.splitlines()) == 1
    # As the newest file of the directory, it is refused too (not skipped in silence).
    forged.rename(checkpoints / "checkpoint-29990101T000000000000Z.jsonl")
    code, message = verify_command()
    assert code == 1 and "signature" in message
    # A copy of the genuine file with one head edited fails its signature as well.
    edited = genuine.replace('"n":2', '"n":3')
    (checkpoints / "checkpoint-29990101T000000000000Z.jsonl").write_text(edited)
    code, message = verify_command()
    assert code == 1 and "signature" in message


def test_a_checkpoint_verifies_offline_with_only_the_public_key(checkpoints, tmp_path):
    person = uuid.uuid4()
    consent_set(profile_id=person, purpose="analytics", granted=True, channel="api", actor="test")
    path = beat_checkpoint()
    public = base64.urlsafe_b64encode(django_settings.TESSERA_CHECKPOINT_PUBLIC_KEY).decode()
    # No Django, no database, no ledger key: a clean environment and the public key.
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}

    def offline(file: Path, key: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "consent.checkpoint_signature", str(file), "--public-key", key],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    result = offline(path, public)
    assert result.returncode == 0, result.stderr
    assert "1 chains" in result.stdout and "signature" in result.stdout
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text(path.read_text().replace('"n":1', '"n":7'))
    result = offline(tampered, public)
    assert result.returncode == 1 and "signature" in result.stderr and "Traceback" not in result.stderr
    other = base64.urlsafe_b64encode(raw_key(Ed25519PrivateKey.generate())[1]).decode()
    result = offline(path, other)
    assert result.returncode == 1 and "Traceback" not in result.stderr


def _noted_grant(person: uuid.UUID, note: str) -> ConsentEvent:
    from consent.services.consents import Evidence, consents_record_many

    [[result]] = consents_record_many([(person, [ConsentChange("analytics", True)])], channel="import",
                                      actor="import", source="crm", evidence=Evidence(note=note))
    return result.event


def test_an_evidence_note_round_trips_through_the_ledger_and_its_export(no_checkpoints):
    from consent.selectors import consent_export_rows

    person, other = uuid.uuid4(), uuid.uuid4()
    note = "CRM sign-up form v3, double opt-in, 2024"
    event = _noted_grant(person, note)
    consent_set(profile_id=other, purpose="analytics", granted=True, channel="api", actor="test")

    stored = ConsentEvent.objects.get(id=event.id)
    assert (stored.evidence_note, stored.actor) == (note, "import")
    assert ConsentEvent.objects.get(profile_id=other).evidence_note == ""
    assert ledger_verify().finding is None and verify_command()[0] == 0
    history = {row["id"]: row for row in consent_export_rows(kind="history", since=None, until=None)}
    assert history[str(event.id)]["evidence_note"] == note
    assert next(r for r in history.values() if r["profile_id"] == str(other))["evidence_note"] is None


@pytest.mark.parametrize("tampered", ["CRM sign-up form v4, double opt-in, 2024", ""])
def test_an_edited_or_removed_evidence_note_is_detected(no_checkpoints, tampered):
    person = uuid.uuid4()
    event = _noted_grant(person, "CRM sign-up form v3, double opt-in, 2024")
    assert ledger_verify().finding is None

    sql("UPDATE consent_consentevent SET evidence_note = %s WHERE id = %s", [tampered, pk(event.id)])

    finding = ledger_verify().finding
    assert (finding.code, finding.event_id) == ("link_invalid", str(event.id))
    code, message = verify_command()
    assert code == 1 and str(event.id) in message


def test_a_note_added_to_an_event_recorded_without_one_is_detected(no_checkpoints):
    person = uuid.uuid4()
    consent_set(profile_id=person, purpose="analytics", granted=True, channel="api", actor="test")
    event = ConsentEvent.objects.get(profile_id=person)

    sql("UPDATE consent_consentevent SET evidence_note = %s WHERE id = %s", ["signed in person", pk(event.id)])

    assert ledger_verify().finding.code == "link_invalid"
