#!/usr/bin/env bash
# Prepare (or bring up to date) the clinic server's PostgreSQL database for several consoles.
#
#   prepare.sh [--host HOST] [--port PORT] [--admin ROLE] [--database NAME]
#              [--owner ROLE] [--console-role ROLE] [--program PATH]
#
# Steps, each idempotent (run it again after every therapy-console upgrade):
#   1. roles.sql   (as --admin, a PostgreSQL superuser): the owner and console roles, the database
#                  owned by the owner; only the console role may connect besides the owner
#   2. schema.sql  (as --admin, in the database): only the owner creates objects
#   3. `therapy-console db upgrade` as the owner: creates or migrates the schema
#   4. grants.sql  (as the owner): the console role's least privileges, from the schema as it is
#
# Passwords are never arguments (they would show in `ps`): PGPASSWORD for the admin,
# THERAPY_OWNER_PASSWORD / THERAPY_CONSOLE_PASSWORD to set the two roles' passwords (left as they
# are when unset; the owner's is also used to connect as the owner). See docs/clinic-server.md.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
HOST=127.0.0.1
PORT=5432
ADMIN=postgres
DATABASE=therapy
OWNER=therapy_owner
CONSOLE=therapy_console
PROGRAM=""

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "prepare.sh: error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --host) HOST="${2:?--host needs a value}"; shift 2 ;;
        --port) PORT="${2:?--port needs a value}"; shift 2 ;;
        --admin) ADMIN="${2:?--admin needs a value}"; shift 2 ;;
        --database) DATABASE="${2:?--database needs a value}"; shift 2 ;;
        --owner) OWNER="${2:?--owner needs a value}"; shift 2 ;;
        --console-role) CONSOLE="${2:?--console-role needs a value}"; shift 2 ;;
        --program) PROGRAM="${2:?--program needs a value}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

name_ok() { [[ "$1" =~ ^[a-z_][a-z0-9_]{0,62}$ ]]; }
for pair in "database:$DATABASE" "owner:$OWNER" "console-role:$CONSOLE"; do
    name_ok "${pair#*:}" || die "--${pair%%:*} '${pair#*:}' must be lower-case letters, digits or _ (at most 63, not starting with a digit)"
done
[ "$OWNER" != "$CONSOLE" ] || die "the owner and the console role must be different roles"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "--port '$PORT' is not a number"
command -v psql >/dev/null || die "psql is not installed (Debian: apt-get install postgresql-client)"

if [ -z "$PROGRAM" ]; then
    if command -v therapy-console >/dev/null; then
        PROGRAM="$(command -v therapy-console)"
    elif [ -x /opt/therapy-console/therapy-console ]; then
        PROGRAM=/opt/therapy-console/therapy-console
    else
        die "therapy-console is not on PATH nor in /opt/therapy-console; give --program PATH"
    fi
fi
[ -x "$PROGRAM" ] || die "--program '$PROGRAM' is not an executable file"

psql_as() {  # psql_as ROLE DATABASE [psql arguments…]
    local role="$1" db="$2"
    shift 2
    psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U "$role" -d "$db" \
        -v owner="$OWNER" -v console="$CONSOLE" -v dbname="$DATABASE" "$@"
}

echo "1/4 roles and database on $HOST:$PORT (as $ADMIN)"
psql_as "$ADMIN" postgres \
    -v owner_password="${THERAPY_OWNER_PASSWORD:-}" \
    -v console_password="${THERAPY_CONSOLE_PASSWORD:-}" \
    -f "$HERE/roles.sql"

echo "2/4 schema rights in $DATABASE"
psql_as "$ADMIN" "$DATABASE" -f "$HERE/schema.sql"

echo "3/4 schema migrations (as $OWNER, with $PROGRAM)"
if [ -n "${THERAPY_OWNER_PASSWORD:-}" ]; then
    PGPASSWORD="$THERAPY_OWNER_PASSWORD" "$PROGRAM" db upgrade \
        --db "postgresql+psycopg://$OWNER@$HOST:$PORT/$DATABASE"
else
    env -u PGPASSWORD "$PROGRAM" db upgrade --db "postgresql+psycopg://$OWNER@$HOST:$PORT/$DATABASE"
fi

echo "4/4 the console role's rights (as $OWNER)"
if [ -n "${THERAPY_OWNER_PASSWORD:-}" ]; then
    PGPASSWORD="$THERAPY_OWNER_PASSWORD" psql_as "$OWNER" "$DATABASE" -f "$HERE/grants.sql"
else
    (unset PGPASSWORD; psql_as "$OWNER" "$DATABASE" -f "$HERE/grants.sql")
fi

cat <<EOF

The clinic server is ready. Each treatment room's console needs this one setting (with the
server's name or address as the treatment-room PCs reach it, if not $HOST):

    THERAPY_CONSOLE_DB=postgresql+psycopg://$CONSOLE@$HOST:$PORT/$DATABASE

(with the console role's password in that OS user's ~/.pgpass, or in the URL; see
docs/clinic-server.md). Check a console with:

    therapy-console db check --db postgresql+psycopg://$CONSOLE@$HOST:$PORT/$DATABASE
EOF
