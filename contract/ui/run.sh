#!/usr/bin/env bash
# The dashboard at /ui in headless Chromium, against a live server (called by .ci/run after
# contract/sdk/run.sh; run it by hand the same way: bash contract/ui/run.sh).
#
#   1. installs the pinned playwright-core with `npm ci` (package-lock.json) into
#      contract/ui/node_modules (git-ignored); it drives Debian's chromium, it downloads none;
#   2. finds Chromium: $CHROMIUM, /usr/bin/chromium or `chromium` on the PATH; when there is
#      none and this runs as root (as CI does), `apt-get install chromium`; otherwise it fails
#      saying what to install;
#   3. builds and starts `stockbatch serve` (debug) on a temp SQLite database and a free port,
#      with known first-start accounts, and creates a user of another retailer with the CLI;
#   4. runs contract/ui/story.mjs: log in through the page, post a batch with failing records
#      through the API, watch it complete on the page, open its failures, click through to a
#      position's movements, resubmit, cancel, and check another retailer's user sees none
#      of it — every step asserted;
#   5. stops the server and checks its log.
#
# Screenshots (dashboard.png, job.png, failures.png, movements.png; failed.png when a step
# fails) and the server's log go to ${CARGO_TARGET_DIR:-target}/ui/. Every wait is bounded;
# the whole run takes well under three minutes once the binary is built.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
UI_DIR=$ROOT/contract/ui
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=$TARGET/debug/stockbatch
OUT=$TARGET/ui
ADMIN=admin
ADMIN_PASSWORD=ui-admin-password-1
CLIENT_ID=stockbatch
CLIENT_SECRET=ui-client-secret-1
OTHER_USER=ui-retailer-198
OTHER_PASSWORD=ui-user-password-1
OTHER_RETAILER=198
STORY_TIMEOUT=${UI_STORY_TIMEOUT:-120}

TMP=$(mktemp -d)
LABEL=ui
# shellcheck source=contract/server.sh
. "$ROOT/contract/server.sh"
cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT

step() { printf '\n=== ui: %s\n' "$*"; }
fail() { printf 'ui: FAILED: %s\n' "$*" >&2; exit 1; }

step "install playwright-core (npm ci)"
# playwright-core has no install scripts and downloads no browser.
(cd "$UI_DIR" && timeout 60 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
node -e 'const p = require("'"$UI_DIR"'/node_modules/playwright-core/package.json"); console.log(p.name + " " + p.version)'

step "Chromium"
CHROMIUM=${CHROMIUM:-}
if [ -z "$CHROMIUM" ]; then
    if [ -x /usr/bin/chromium ]; then
        CHROMIUM=/usr/bin/chromium
    elif command -v chromium >/dev/null; then
        CHROMIUM=$(command -v chromium)
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "no Chromium: installing Debian's (apt-get install chromium)"
        timeout 300 apt-get update -qq
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium >/dev/null
        CHROMIUM=/usr/bin/chromium
    else
        fail "no Chromium found (set CHROMIUM=/path/to/chromium, or install it: sudo apt-get install chromium)"
    fi
fi
[ -x "$CHROMIUM" ] || fail "Chromium at $CHROMIUM is not executable"
"$CHROMIUM" --version 2>/dev/null || true

step "build and start the server"
cargo build --quiet --bin stockbatch
[ -x "$BIN" ] || fail "no binary at $BIN"
mkdir -p "$OUT"
rm -f "$OUT"/*.png
DB="sqlite://$TMP/ui.db"
LOG=$OUT/server.log
start_server "$LOG" "$DB" STOCKBATCH_ADMIN_USERNAME="$ADMIN" \
    STOCKBATCH_ADMIN_PASSWORD="$ADMIN_PASSWORD" STOCKBATCH_CLIENT_ID="$CLIENT_ID" \
    STOCKBATCH_CLIENT_SECRET="$CLIENT_SECRET" || fail "$SERVER_START_ERROR"
BASE=$SERVER_BASE
echo "server at $BASE (log: $LOG)"

step "a user of retailer $OTHER_RETAILER"
timeout 30 "$BIN" user create "$OTHER_USER" --retailer "$OTHER_RETAILER" --permissions ALL \
    --password "$OTHER_PASSWORD" --database-url "$DB"

step "the dashboard's story in headless Chromium"
status=0
env BASE_URL="$BASE" CLIENT_ID="$CLIENT_ID" CLIENT_SECRET="$CLIENT_SECRET" \
    ADMIN="$ADMIN" ADMIN_PASSWORD="$ADMIN_PASSWORD" OTHER_USER="$OTHER_USER" \
    OTHER_PASSWORD="$OTHER_PASSWORD" OTHER_RETAILER="$OTHER_RETAILER" CHROMIUM="$CHROMIUM" \
    SCREENSHOT_DIR="$OUT" timeout --kill-after=5 "$STORY_TIMEOUT" node "$UI_DIR/story.mjs" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "ui: FAILED: the story did not finish within ${STORY_TIMEOUT} s" >&2
fi

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    tail -n 50 "$LOG"
    echo "ui: FAILED: the server died during the story" >&2
    status=1
fi
stop_server
if grep -E 'panicked|ERROR stockbatch' "$LOG"; then
    echo "ui: FAILED: the server logged errors (see $LOG)" >&2
    status=1
fi
[ "$status" = 0 ] || exit "$status"
[ -s "$OUT/dashboard.png" ] || fail "no screenshot at $OUT/dashboard.png"
printf '\nui: passed; screenshots in %s\n' "$OUT"
