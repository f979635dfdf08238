"""Crypto at rest: field encrypt/decrypt and blind-index rates, and rotate_keys on
100,000 profiles' data keys in PostgreSQL.

    python bench/crypto.py [--profiles 100000]

Reference: AES-GCM on this CPU with AES-NI runs at GB/s; per-field cost is dominated by
Python call overhead, which is what the figures show.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crypto_primitives  # noqa: E402
from setup_django import fresh_postgres, peak_rss_mb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=1.0, help="per primitive")
    args = parser.parse_args()
    crypto_primitives.main(args.seconds)

    fresh_postgres("tessera_bench_crypto")
    from django.conf import settings
    from django.db import transaction

    from cdp import crypto
    from cdp.core.bulk import bulk_insert
    from cdp.models import DataKey

    old_key, new_key = os.urandom(32), os.urandom(32)
    settings.TESSERA_MASTER_KEYS = [old_key]
    started = time.perf_counter()
    for start in range(0, args.profiles, 10_000):
        with transaction.atomic():
            bulk_insert(DataKey, [crypto.data_key_new()[0] for _ in range(min(10_000, args.profiles - start))])
    created = time.perf_counter() - started
    settings.TESSERA_MASTER_KEYS = [new_key, old_key]
    started = time.perf_counter()
    rotated = crypto.data_keys_rotate(batch_size=1000)
    elapsed = time.perf_counter() - started
    assert rotated == args.profiles and crypto.data_keys_pending_rotation() == 0
    print()
    print(f"data keys created      {args.profiles:>10,} in {created:.1f} s")
    print(f"rotate_keys            {rotated:>10,} data keys in {elapsed:.1f} s "
          f"({rotated / elapsed:,.0f} keys/s; field ciphertexts untouched)")
    print(f"peak RSS               {peak_rss_mb():>10.0f} MB")


if __name__ == "__main__":
    main()
