#!/usr/bin/env bash
# The replica's start (docker-compose.scale.yml), as the postgres user: on an empty volume,
# clone the primary with pg_basebackup -R (which writes standby.signal and primary_conninfo),
# then run as a hot standby that streams from it.
set -euo pipefail
if [ ! -s "${PGDATA}/PG_VERSION" ]; then
    until pg_isready -h postgres -U "${POSTGRES_USER}" -d "${POSTGRES_DB}" -q; do sleep 1; done
    PGPASSWORD="${POSTGRES_PASSWORD}" pg_basebackup -h postgres -U "${POSTGRES_USER}" -D "${PGDATA}" \
        -X stream -R --checkpoint=fast
    chmod 700 "${PGDATA}"
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on
