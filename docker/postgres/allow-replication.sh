#!/usr/bin/env bash
# Run once by the postgres image when its volume is first initialised (docker-compose.scale.yml):
# lets the tessera role (the image's superuser) stream WAL to the replica over the compose network.
set -euo pipefail
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
