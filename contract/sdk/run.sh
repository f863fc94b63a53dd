#!/usr/bin/env bash
# Fluent Commerce's own SDK against a live stockbatch, on SQLite and on PostgreSQL (called by
# .ci/run after contract/run.sh; run it by hand the same way: bash contract/sdk/run.sh).
#
#   1. installs the pinned @fluentcommerce/fc-connect-sdk with `npm ci` (package-lock.json)
#      into contract/sdk/node_modules (git-ignored);
#   2. for each backend: starts `stockbatch serve` on a free port with known first-start
#      accounts, STOCKBATCH_TOKEN_TTL_SECS=2 and STOCKBATCH_REFRESH_TOKEN_TTL_SECS=5 (so the
#      SDK's token refresh paths run), creates a user of retailer 197 and an OAuth client
#      bound to it, runs contract/sdk/story.mjs (the SDK's batch story, every step asserted),
#      stops the server and checks its log;
#   3. fails if any step on any backend failed.
#
# The binary is ${CARGO_TARGET_DIR:-target}/debug/stockbatch (STOCKBATCH_BIN overrides it),
# built with `cargo build --bin stockbatch` when missing. PostgreSQL: a database is created
# on the server of STOCKBATCH_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)
# and dropped afterwards; SDK_BACKENDS="sqlite" (or "postgres") runs one backend only.
# Server logs and the SDK's HTTP transcripts go to ${CARGO_TARGET_DIR:-target}/sdk-contract/.
# Every wait is bounded; the whole run takes well under two minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SDK_DIR=$ROOT/contract/sdk
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=${STOCKBATCH_BIN:-$TARGET/debug/stockbatch}
OUT=$TARGET/sdk-contract
PG_ADMIN_URL=${STOCKBATCH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
BACKENDS=${SDK_BACKENDS:-sqlite postgres}
RETAILER=197
TTL=2
REFRESH_TTL=5
ADMIN=admin
ADMIN_PASSWORD=sdk-admin-password-1
CLIENT_ID=stockbatch
CLIENT_SECRET=sdk-client-secret-1
SDK_USER=sdk
SDK_PASSWORD=sdk-user-password-1
CC_CLIENT=sdk-cc
STORY_TIMEOUT=${SDK_STORY_TIMEOUT:-50}

TMP=$(mktemp -d)
PG_DB=
LABEL=sdk
# shellcheck source=contract/server.sh
. "$ROOT/contract/server.sh"
drop_pg() {
    if [ -n "$PG_DB" ]; then
        timeout 20 psql "$PG_ADMIN_URL" -q -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null || true
        PG_DB=
    fi
}
cleanup() {
    stop_server
    drop_pg
    rm -rf "$TMP"
}
trap cleanup EXIT

step() { printf '\n=== sdk: %s\n' "$*"; }

step "install @fluentcommerce/fc-connect-sdk (npm ci)"
# No install scripts: the SDK needs none (ssh2's optional native build would want node-gyp
# and headers from the internet).
(cd "$SDK_DIR" && timeout 60 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
node -e 'const p = require("'"$SDK_DIR"'/node_modules/@fluentcommerce/fc-connect-sdk/package.json"); console.log(p.name + " " + p.version)'

if [ ! -x "$BIN" ]; then
    step "build stockbatch ($BIN is missing)"
    cargo build --quiet --bin stockbatch
fi
[ -x "$BIN" ] || { echo "sdk: FAILED: no binary at $BIN" >&2; exit 1; }
mkdir -p "$OUT"

# run_backend NAME DATABASE_URL: 0 when the whole story passed.
run_backend() {
    local name=$1 db=$2 log=$OUT/$1-server.log base= cc_secret= cc_error= out
    step "$name: start the server"
    if ! start_server "$log" "$db" STOCKBATCH_ADMIN_USERNAME="$ADMIN" \
        STOCKBATCH_ADMIN_PASSWORD="$ADMIN_PASSWORD" STOCKBATCH_CLIENT_ID="$CLIENT_ID" \
        STOCKBATCH_CLIENT_SECRET="$CLIENT_SECRET" STOCKBATCH_TOKEN_TTL_SECS="$TTL" \
        STOCKBATCH_REFRESH_TOKEN_TTL_SECS="$REFRESH_TTL"; then
        echo "sdk: FAILED ($name): $SERVER_START_ERROR" >&2
        return 1
    fi
    base=$SERVER_BASE
    echo "server at $base (log: $log)"

    step "$name: a user of retailer $RETAILER and a client bound to it"
    if ! out=$(timeout 30 "$BIN" user create "$SDK_USER" --retailer "$RETAILER" --permissions ALL \
        --password "$SDK_PASSWORD" --database-url "$db" 2>&1); then
        echo "$out"
        echo "sdk: FAILED ($name): stockbatch user create" >&2
        stop_server
        return 1
    fi
    echo "$out"
    # `client create NAME --retailer R` prints the generated secret on its last line. Without
    # it the story still runs, and its client_credentials steps fail saying why.
    if out=$(timeout 30 "$BIN" client create "$CC_CLIENT" --retailer "$RETAILER" --permissions ALL \
        --database-url "$db" 2>&1); then
        cc_secret=$(printf '%s\n' "$out" | tail -n1 | tr -d '[:space:]')
        echo "created client $CC_CLIENT (retailer $RETAILER)"
    else
        cc_error="\`stockbatch client create $CC_CLIENT --retailer $RETAILER --permissions ALL\` failed: $(printf '%s' "$out" | tr '\n' ' ' | cut -c1-300)"
        echo "$cc_error"
    fi

    step "$name: the SDK's story"
    local status=0
    env BASE_URL="$base" CLIENT_ID="$CLIENT_ID" CLIENT_SECRET="$CLIENT_SECRET" \
        USERNAME="$SDK_USER" PASSWORD="$SDK_PASSWORD" RETAILER_ID="$RETAILER" \
        CC_CLIENT_ID="$CC_CLIENT" CC_CLIENT_SECRET="$cc_secret" CC_CLIENT_ERROR="$cc_error" \
        TOKEN_TTL_SECS="$TTL" REFRESH_TOKEN_TTL_SECS="$REFRESH_TTL" SDK_TRANSCRIPT="$OUT/$name-wire.jsonl" \
        timeout --kill-after=5 "$STORY_TIMEOUT" node "$SDK_DIR/story.mjs" || status=$?
    if [ "$status" = 124 ] || [ "$status" = 137 ]; then
        echo "sdk: FAILED ($name): the story did not finish within ${STORY_TIMEOUT} s" >&2
    fi

    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        tail -n 50 "$log"
        echo "sdk: FAILED ($name): the server died during the story" >&2
        status=1
    fi
    stop_server
    if grep -E 'panicked|ERROR stockbatch' "$log"; then
        echo "sdk: FAILED ($name): the server logged errors (see $log)" >&2
        status=1
    fi
    return "$status"
}

PASSED=0
FAILED=0
for backend in $BACKENDS; do
    case "$backend" in
    sqlite)
        if run_backend sqlite "sqlite://$TMP/sdk.db"; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
        ;;
    postgres)
        step "postgres: create a database on $PG_ADMIN_URL"
        PG_DB=stockbatch_sdk_$$_$(date +%s)
        if ! timeout 20 psql "$PG_ADMIN_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$PG_DB\"" >/dev/null; then
            echo "sdk: FAILED (postgres): cannot create a database on $PG_ADMIN_URL" >&2
            PG_DB=
            FAILED=$((FAILED + 1))
            continue
        fi
        # The same server and credentials as the admin URL, another database.
        pg_url=$(printf '%s' "$PG_ADMIN_URL" | sed -E "s#^(postgres(ql)?://[^/]+)/[^?]*#\\1/$PG_DB#")
        if run_backend postgres "$pg_url"; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
        drop_pg
        ;;
    *)
        echo "sdk: unknown backend $backend (sqlite or postgres)" >&2
        FAILED=$((FAILED + 1))
        ;;
    esac
done

printf '\nsdk: %d passed, %d failed\n' "$PASSED" "$FAILED"
[ "$FAILED" = 0 ]
