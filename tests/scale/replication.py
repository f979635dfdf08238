"""A private streaming-replication pair for the replica tests: a primary made with
`initdb` (tests/faults/harness.py's PostgresCluster) and a standby cloned from it with
`pg_basebackup -R`, each on its own port in a temporary directory."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))

import harness  # noqa: E402  (tests/faults/harness.py: private services and the product)


class StandbyCluster(harness.PostgresCluster):
    """A hot standby of `primary`, streaming from it (standby.signal and
    primary_conninfo written by pg_basebackup -R)."""

    def __init__(self, directory: Path, primary: harness.PostgresCluster):
        self.bin, self.as_user = primary.bin, primary.as_user
        self.directory, self.port = directory, harness.free_port()
        self.data = directory / "pgdata"
        if self.as_user:
            shutil.chown(directory, "postgres")
        self._run(["pg_basebackup", "-D", str(self.data), "-h", "127.0.0.1", "-p", str(primary.port),
                   "-U", "postgres", "-X", "stream", "-R", "--no-sync",
                   # Without it the backup waits for the primary's next spread checkpoint: minutes.
                   "--checkpoint=fast"])

    def replay_pause(self) -> None:
        self.psql("SELECT pg_wal_replay_pause()")

    def replay_resume(self) -> None:
        self.psql("SELECT pg_wal_replay_resume()")

    def replayed(self) -> str:
        return self.psql("SELECT pg_last_wal_replay_lsn()::text")[0][0]


def replicated_product():
    """The product (migrated, keys made) on a primary with a running standby; returns
    (product, standby, cleanup). The product's env names the standby as its replica."""
    product, cleanup_primary = harness.environment(redis=False)
    standby_dir = product.directory / "standby"
    standby_dir.mkdir()
    standby = None
    try:
        standby = StandbyCluster(standby_dir, product.pg)
        standby.start()
        product.env["DATABASE_REPLICA_URL"] = standby.url("tessera")
    except BaseException:
        cleanup_primary()
        raise

    def cleanup() -> None:
        product.stop()
        standby.stop()
        cleanup_primary()

    return product, standby, cleanup
