"""Resolution decides; the domain's row functions do the row work. These read the source,
so a second copy of that work (or a module grown past 500 lines) shows up here."""

from __future__ import annotations

import re
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[3] / "cdp" / "services"


def test_no_module_of_the_profile_services_is_over_500_lines():
    sizes = {path.relative_to(SERVICES).as_posix(): len(path.read_text().splitlines())
             for path in SERVICES.rglob("*.py")}
    assert sizes["resolution/__init__.py"] > 0
    assert {name: size for name, size in sizes.items() if size > 500} == {}


def test_resolution_encrypts_and_decides_personal_data_only_through_the_domain_functions():
    source = "\n".join(path.read_text() for path in (SERVICES / "resolution").glob("*.py"))
    # Every ciphertext goes through attribute_row_fill, record_payload_*, identity_value_*.
    assert not re.findall(r"\.(encrypt|decrypt)\(", source)
    assert "PAYLOAD_FIELD" not in source and "IDENTITY_FIELD" not in source and "attribute_field" not in source
    # Whether an attribute is personal is attributes.is_personal's decision alone.
    assert "TESSERA_NON_PERSONAL_ATTRIBUTES" not in source and "non_personal" not in source
    for name in ("attribute_row_fill", "attribute_rows_rebuilt", "record_payload_move", "identity_value_move",
                 "merges_apply"):
        assert name in source
