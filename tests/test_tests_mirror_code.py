"""The test tree mirrors the code tree (issue 21): tests/cdp/services/ holds the tests of
cdp/services/, and so on, so a newcomer finds a module's tests where the module is. Only
the suites that cut across the apps on purpose live outside that mirror."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# Suites about the whole system rather than one package: real workers and brokers,
# outages of the services, attacks across every boundary, more than one database server.
CROSS_CUTTING = {"integration", "faults", "security", "scale"}


def test_every_test_folder_mirrors_a_package_of_the_code():
    strays = []
    for folder in sorted(p for p in TESTS.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        relative = folder.relative_to(TESTS)
        if relative.parts[0] in CROSS_CUTTING:
            continue
        if not (ROOT / relative / "__init__.py").exists():
            strays.append(str(relative))
    assert strays == [], f"test folders with no package of the same path: {strays}"


def test_the_check_notices_a_stray_folder(tmp_path):
    """The check itself can fail: a folder named after no package is reported."""
    stray = TESTS / "cdp" / "no_such_package_here"
    assert not (ROOT / "cdp" / "no_such_package_here").exists()
    stray.mkdir()
    try:
        try:
            test_every_test_folder_mirrors_a_package_of_the_code()
        except AssertionError as error:
            assert "cdp/no_such_package_here" in str(error)
        else:
            raise AssertionError("a stray test folder went unnoticed")
    finally:
        stray.rmdir()
