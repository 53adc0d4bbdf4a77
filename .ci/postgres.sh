#!/usr/bin/env bash
# Start a local PostgreSQL for the tuning tests (several Optuna workers sharing one study).
#
# Idempotent: installs Debian's `postgresql` if missing, creates a cluster if there is none,
# starts it on 127.0.0.1:5432, creates the role and database `specdenoise` (password
# `specdenoise`), then prints the SQLAlchemy URL on stdout (progress goes to stderr):
#
#   export SPECDENOISE_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
#
# Runs as root (CI containers) or through sudo. Override with PG_USER / PG_PASSWORD / PG_DB /
# PG_PORT.
set -euo pipefail

PG_USER="${PG_USER:-specdenoise}"
PG_PASSWORD="${PG_PASSWORD:-specdenoise}"
PG_DB="${PG_DB:-specdenoise}"
PG_PORT="${PG_PORT:-5432}"

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    log "needs root or sudo to install and start PostgreSQL"
    exit 1
fi

# 1. Install the server if missing.
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing Debian's postgresql (about a minute)"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq >&2
    "${SUDO[@]}" apt-get install -y -qq postgresql >&2
fi

# 2. The newest installed major version; a cluster named main on PG_PORT.
VERSION="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main"' | grep -q .; then
    log "creating cluster $VERSION/main"
    "${SUDO[@]}" pg_createcluster "$VERSION" main --port "$PG_PORT" >&2
fi
CLUSTER_PORT="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')"
if [ "$CLUSTER_PORT" != "$PG_PORT" ]; then
    log "cluster $VERSION/main is configured for port $CLUSTER_PORT, not $PG_PORT"
    exit 1
fi

# 3. Start it (no systemd in containers: pg_ctlcluster directly).
STATUS="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}')"
if [ "$STATUS" != "online" ]; then
    log "starting cluster $VERSION/main on port $PG_PORT"
    "${SUDO[@]}" pg_ctlcluster "$VERSION" main start >&2
fi
for _ in $(seq 1 30); do
    if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
        break
    fi
    sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    log "PostgreSQL does not answer on 127.0.0.1:$PG_PORT (see /var/log/postgresql/)"
    exit 1
fi

# 4. Role and database, created once; the password is (re)set every time.
if [ "$(id -u)" -eq 0 ]; then
    AS_POSTGRES=(runuser -u postgres --)
else
    AS_POSTGRES=(sudo -u postgres)
fi
psql_admin() { "${AS_POSTGRES[@]}" psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != "1" ]; then
    log "creating role $PG_USER"
    psql_admin -c "CREATE ROLE \"$PG_USER\" LOGIN"
fi
psql_admin -c "ALTER ROLE \"$PG_USER\" WITH LOGIN PASSWORD '$PG_PASSWORD'"
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
    log "creating database $PG_DB"
    psql_admin -c "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\""
fi

# 5. Check the password login over TCP, as the tests will connect.
if ! PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -qtA -c "SELECT 1" >/dev/null; then
    log "cannot log in as $PG_USER over TCP (check pg_hba.conf of cluster $VERSION/main)"
    exit 1
fi
log "ready"
echo "postgresql+psycopg2://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
