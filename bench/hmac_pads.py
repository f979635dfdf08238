"""Does HMAC-SHA256 with cached pads (cdp.core.crypto_primitives) beat the standard library?

    python bench/hmac_pads.py [seconds per variant, default 1.0] [rounds, default 5]

Each blind index and keyed hash is one HMAC-SHA256 of a short message under a long-lived
key. Three ways to compute it, on the messages the hot path really hashes (an email's
blind index, a 40-byte evidence hash): the hand-kept pads (copy two hash states),
`hmac.new(key, msg, sha256)` and `hmac.digest(key, msg, "sha256")` (OpenSSL's one-shot).
Prints the best of `rounds` for each (ops/s and µs per HMAC) and the ratio to
`hmac.digest`, the reference. The outputs are checked equal first.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

from crypto_primitives import ops_per_second  # noqa: E402  (bench/crypto_primitives.py, beside this file)

from cdp.core import crypto_primitives as crypto  # noqa: E402


def main(seconds: float, rounds: int) -> None:
    key = crypto.new_data_key()
    messages = {
        "blind index (email)": crypto._blind_index_prefix("email", "") + crypto._encode_parts("jane.doe@example.org"),
        "keyed hash (40 B)": crypto._encode_parts("tessera:keyed-hash:v1", "consent-evidence-ua", "x" * 40),
    }
    for label, message in messages.items():
        variants: dict[str, Callable[[], object]] = {
            "cached pads": lambda m=message: crypto._hmac_sha256_hex(key, m),
            "hmac.new": lambda m=message: hmac.new(key, m, hashlib.sha256).hexdigest(),
            "hmac.digest": lambda m=message: hmac.digest(key, m, "sha256").hex(),
        }
        outputs = {name: run() for name, run in variants.items()}
        assert len(set(outputs.values())) == 1, "the three must compute the same HMAC"
        best = {name: max(ops_per_second(run, seconds=seconds) for _ in range(rounds))
                for name, run in variants.items()}
        print(f"{label} ({len(message)} B message), best of {rounds}:")
        print(f"  {'variant':<14}{'ops/s':>12}{'µs/op':>9}{'vs hmac.digest':>16}")
        for name, rate in best.items():
            print(f"  {name:<14}{rate:>12,.0f}{1e6 / rate:>9.3f}{rate / best['hmac.digest']:>15.2f}x")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
