"""The management commands of CONTRACT.md: output, exit codes, idempotence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from cdp.models import Event, Identity, Item, Profile, Source, SourceRecord
from cdp.services.sources import source_by_write_key
from consent.models import ConsentState

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.django_db


def run(*args, **kwargs) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def test_create_source_prints_the_write_key_last_and_stores_only_its_hash():
    out, _ = run("create_source", "crm", "--name", "Our CRM", "--kind", "first_party", "--trust", "90")
    write_key = out.strip().splitlines()[-1]
    source = Source.objects.get(key="crm")
    assert (source.name, source.kind, source.trust) == ("Our CRM", "first_party", 90)
    assert write_key not in source.write_key_hash and write_key.startswith("wk_")
    assert source_by_write_key(write_key) == source
    with pytest.raises(CommandError, match="already exists"):
        run("create_source", "crm", "--name", "Again", "--kind", "first_party", "--trust", "1")


def test_create_source_fails_with_one_plain_sentence(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "create_source", "Bad Key!", "--name", "x", "--kind", "first_party",
         "--trust", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TESSERA_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"},
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line and not line.startswith("WARNING")]
    assert lines == ["CommandError: A source key is 1-64 lower-case letters, digits, '-' or '_'."]


def test_create_staff_roles_and_least_privilege(monkeypatch):
    monkeypatch.setenv("STAFF_PASSWORD", "correct horse battery staple 42")
    run("create_staff", "olivia", "--role", "operator", "--password-from-env", "STAFF_PASSWORD")
    out, _ = run("create_staff", "carl", "--role", "compliance")
    operator, officer = get_user_model().objects.get(username="olivia"), get_user_model().objects.get(username="carl")
    assert operator.check_password("correct horse battery staple 42")
    assert officer.check_password(out.strip().splitlines()[-1])
    assert operator.is_staff and not operator.is_superuser
    assert officer.is_staff and not officer.is_superuser  # the admin shows them consent configuration only
    assert operator.has_perm("cdp.view_source") and not operator.has_perm("cdp.delete_profile")
    assert not officer.has_perm("cdp.view_source")
    assert officer.has_perm("consent.change_retentionrule") and not operator.has_perm("consent.change_retentionrule")
    assert operator.has_perm("consent.view_retentionrule")
    monkeypatch.setenv("WEAK", "password")
    with pytest.raises(CommandError, match="too weak"):
        run("create_staff", "weak", "--role", "operator", "--password-from-env", "WEAK")
    with pytest.raises(CommandError, match="not set"):
        run("create_staff", "nobody", "--role", "operator", "--password-from-env", "UNSET_VARIABLE_X")


def table_counts() -> tuple:
    return tuple(m.objects.count() for m in (Source, Item, Profile, SourceRecord, Identity, Event, ConsentState))


def test_load_demo_is_deterministic_and_a_rerun_changes_nothing():
    out, _ = run("load_demo", "--customers", "120", "--seed", "7")
    assert "customers" in out
    first = table_counts()
    assert all(count > 0 for count in first)
    states = sorted(ConsentState.objects.values_list("purpose", "granted"))
    run("load_demo", "--customers", "120", "--seed", "7")
    assert table_counts() == first
    assert sorted(ConsentState.objects.values_list("purpose", "granted")) == states
    # The messy records collapse into roughly one profile per customer.
    live = Profile.objects.filter(status="active").count()
    assert 100 <= live <= 140


def write_movielens(directory: Path) -> None:
    (directory / "u.item").write_text(
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n",
        encoding="latin-1")
    (directory / "u.genre").write_text(
        "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\nDocumentary|7\n"
        "Drama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\nSci-Fi|15\n"
        "Thriller|16\nWar|17\nWestern|18\n")
    (directory / "u.data").write_text("1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n"
                                      "2\t99\t4\t881250952\nbroken line\n")


def test_import_movielens_streams_loads_and_reports(tmp_path):
    write_movielens(tmp_path)
    out, err = run("import_movielens", "--path", str(tmp_path), "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["profiles"] == {"created": 2}
    assert summary["events"] == {"accepted": 3}
    assert summary["items"] == {"created": 2}
    assert summary["rows_rejected"] == 2 and set(summary["rejected_by_reason"]) == {"malformed_row", "unknown_item"}
    assert Event.objects.filter(type="rating").count() == 3
    again = json.loads(run("import_movielens", "--path", str(tmp_path), "--json")[0].strip().splitlines()[-1])
    assert again["events"] == {"duplicate": 3} and again["profiles"] == {"unchanged": 2}
    with pytest.raises(CommandError, match="is not a directory"):
        run("import_movielens", "--path", str(tmp_path / "missing"))


def test_import_transactions_handles_the_retail_mess(tmp_path):
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    rows = [
        "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
        "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom",
        "536414,22139,,56,2010-12-01 11:52:00,0,,United Kingdom",
        "536544,21773,DECORATIVE ROSE BATHROOM BOTTLE,1,2010-12-01 14:32:00,2.51,,United Kingdom",
        "536370,22728,ALARM CLOCK BAKELIKE PINK,24,2010-12-01 08:45:00,3.75,12583.0,France",
    ]
    path = tmp_path / "2010-12-01.csv"
    path.write_text(header + "\n".join(rows) + "\n")
    out, _ = run("import_transactions", "--path", str(path), "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["rows_loaded"] == 3
    assert summary["events"] == {"accepted": 3} and summary["profiles"] == {"created": 2}
    assert summary["rejected_by_reason"]["cancellation"] == 1
    assert summary["rejected_by_reason"]["missing_customer_id"] == 1
    purchase = Event.objects.get(item_id="retail-71053")
    assert purchase.quantity == 6 and str(purchase.price) == "3.39"
    assert purchase.occurred_at.isoformat() == "2010-12-01T08:26:00+00:00"  # London in winter is UTC
    out, _ = run("import_transactions", "--path", str(path))
    assert "Loaded 3 rows, rejected 3." in out
    with pytest.raises(CommandError):
        run("import_transactions", "--path", str(path), "--timezone", "Mars/Olympus")


def test_import_transactions_reads_the_purchases_shape(tmp_path):
    path = tmp_path / "cdnow.txt"
    path.write_bytes(b"   00001 19970101  1   11.77\r\n   00001 19970118  3   10.00\r\n   00002 1997-01-12  0   2\r\n")
    out, _ = run("import_transactions", "--format", "purchases", "--path", str(path), "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["source"] == "purchases" and summary["rows_loaded"] == 2
    assert summary["rejected_by_reason"] == {"non_positive_quantity": 1}
    assert summary["events"] == {"accepted": 2} and summary["profiles"] == {"created": 1}
    later = Event.objects.get(occurred_at__date="1997-01-18")
    assert later.quantity == 3 and str(later.price) == "3.33"  # 10.00 over 3, to the cent
    out, _ = run("import_transactions", "--format", "purchases", "--path", str(path), "--json")
    assert json.loads(out.strip().splitlines()[-1])["events"] == {"duplicate": 2}


def test_demo_info_prints_urls_and_staff_log_ins(settings):
    settings.DEBUG = True
    run("load_demo", "--customers", "20", "--seed", "1")
    out, _ = run("demo_info", "--port", "8123")
    assert "http://127.0.0.1:8123/api/docs/" in out
    assert "operator / demo-operator-pass" in out
    # The demo sources with write keys that work (Segment's Basic auth user name).
    from cdp.models import Source

    keys = {line.split()[0]: line.split()[1] for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1].startswith("wk_")}
    assert set(keys) == set(Source.objects.values_list("key", flat=True)) >= {"shop", "web", "demo-crm"}
    assert all(source_by_write_key(key).key == source for source, key in keys.items())
    assert not Source.objects.filter(key="crm").exists()  # the docs' example source name stays free


def test_progress_is_a_plain_line_when_not_on_a_terminal():
    from cdp.management.base import LineProgress

    stream = StringIO()
    with LineProgress(total=3, unit="step", desc="Loading demo data", every=0, stream=stream) as bar:
        for _ in range(3):
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("Loading demo data: 1/3 steps") and lines[-1].startswith("Loading demo data: 3/3")


def test_importers_record_the_stated_consent_in_the_ledger_with_its_evidence(tmp_path):
    from consent.models import ConsentEvent

    write_movielens(tmp_path)
    evidence = "MovieLens sign-up terms v2, 1998"
    out, _ = run("import_movielens", "--path", str(tmp_path), "--json", "--consent", "analytics,personalization",
                 "--evidence", evidence)
    assert json.loads(out.strip().splitlines()[-1])["consents_recorded"] == 4
    events = ConsentEvent.objects.all()
    assert sorted(events.values_list("purpose", flat=True)) == ["analytics", "analytics", "personalization",
                                                                "personalization"]
    assert {(e.channel, e.source, e.actor, e.evidence_note, e.granted) for e in events} == {
        ("import", "movielens", "import", evidence, True)}
    again = run("import_movielens", "--path", str(tmp_path), "--json", "--consent", "analytics",
                "--evidence", evidence)[0]
    assert json.loads(again.strip().splitlines()[-1])["consents_recorded"] == 0  # nothing new
    with pytest.raises(CommandError, match="--evidence"):
        run("import_movielens", "--path", str(tmp_path), "--consent", "analytics")
    with pytest.raises(CommandError, match="purposes among"):
        run("import_transactions", "--path", str(tmp_path), "--consent", "everything", "--evidence", "x")
