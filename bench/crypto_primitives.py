"""Throughput of the crypto primitives on one core: field encrypt/decrypt and blind index.

    python bench/crypto_primitives.py [seconds per primitive, default 0.8]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

from cdp.core import crypto_primitives as crypto  # noqa: E402

TYPICAL_VALUE = b'"jane.doe+newsletters@examplemail.co.uk"'  # a JSON-encoded email
assert len(TYPICAL_VALUE) == 40
OWNER_ID = "0b9e3c1e-8f43-4a0a-9d55-2f1f2c7c9a10"


def ops_per_second(operation: Callable[[], object], *, seconds: float) -> float:
    """Calls in batches so the clock is read rarely; a short warm-up comes first."""
    for _ in range(1000):
        operation()
    calls, batch = 0, 1000
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(batch):
            operation()
        calls += batch
    return calls / elapsed


def main(seconds: float) -> None:
    dek, index_key = crypto.new_data_key(), crypto.new_data_key()
    aad = crypto.field_aad(OWNER_ID, "email")
    ciphertext = crypto.encrypt_field(dek, TYPICAL_VALUE, aad=aad)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("encrypt_field (40 B)", lambda: crypto.encrypt_field(dek, TYPICAL_VALUE, aad=aad)),
        ("decrypt_field (40 B)", lambda: crypto.decrypt_field(dek, ciphertext, aad=aad)),
        ("blind_index (email)", lambda: crypto.blind_index(
            index_key, kind="email", namespace="", normalized_value="jane.doe@example.org")),
    ]
    print(f"{'primitive':<24}{'ops/s':>12}{'µs/op':>9}")
    for name, operation in cases:
        rate = ops_per_second(operation, seconds=seconds)
        print(f"{name:<24}{rate:>12,.0f}{1e6 / rate:>9.2f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.8)
