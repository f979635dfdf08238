#!/usr/bin/env bash
# Offline validation of docker/docker-compose.yml, alone and with the scale-out override
# docker/docker-compose.scale.yml (no Docker engine needed), for CI.
#
#   bash docker/check.sh
#
# 1. With a dummy value for every required variable (a value already in the environment
#    is kept), `config -q` must accept the file.
# 2. With each required variable emptied in turn, `config -q` must refuse it, proving the
#    ${VAR:?...} guards are still there.
#
# Uses the `docker compose` v2 plugin when present, else `docker-compose`.
# Exit status: 0 valid, 1 invalid, 3 no compose tool found (validation skipped).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
compose_file="docker/docker-compose.yml"
scale_file="docker/docker-compose.scale.yml"

required=(POSTGRES_PASSWORD SECRET_KEY ALLOWED_HOSTS TESSERA_MASTER_KEYS TESSERA_INDEX_KEY TESSERA_LEDGER_KEY)
dummy_key="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # 32 zero bytes: well-formed, not secret

export POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-check-only-password}"
export SECRET_KEY="${SECRET_KEY:-check-only-secret-key}"
export ALLOWED_HOSTS="${ALLOWED_HOSTS:-localhost}"
export TESSERA_MASTER_KEYS="${TESSERA_MASTER_KEYS:-$dummy_key}"
export TESSERA_INDEX_KEY="${TESSERA_INDEX_KEY:-$dummy_key}"
export TESSERA_LEDGER_KEY="${TESSERA_LEDGER_KEY:-$dummy_key}"

if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    echo "docker-compose not installed; skipping compose validation"
    exit 3
fi

check() {  # $1: a label; the rest: compose -f arguments
    local label="$1"; shift
    if ! "${compose[@]}" "$@" config -q; then
        echo "check.sh: $label is not valid (checked with: ${compose[*]})." >&2
        exit 1
    fi
    for name in "${required[@]}"; do
        # An empty value in the environment wins over docker/.env, so this holds on any machine.
        if env "$name=" "${compose[@]}" "$@" config -q >/dev/null 2>&1; then
            echo "check.sh: $label accepts an empty $name; it must use \${$name:?...}." >&2
            exit 1
        fi
    done
    echo "check.sh: $label is valid (${compose[*]}); all ${#required[@]} required variables are enforced."
}

check "$compose_file" -f "$compose_file"
check "$compose_file + $scale_file" -f "$compose_file" -f "$scale_file"
# The scale-out file must run a replica, give it to web, and split the workers by queue.
scaled=$("${compose[@]}" -f "$compose_file" -f "$scale_file" config)
for expected in "postgres-replica:" "DATABASE_REPLICA_URL:" "worker-pipeline:" "- realtime,maintenance" "- pipeline"; do
    if ! grep -qF -- "$expected" <<<"$scaled"; then
        echo "check.sh: $scale_file no longer has '$expected'." >&2
        exit 1
    fi
done
