# Starts and stops the stockbatch server under test for contract/sdk/run.sh and
# contract/ui/run.sh (sourced). Needs BIN (the binary) and LABEL (the caller's name, for
# messages); sets SERVER_PID and, once /health answers, SERVER_BASE.
SERVER_PID=
SERVER_BASE=
SERVER_START_ERROR=

# stop_server: SIGTERM, then SIGKILL if it has not stopped within 10 s.
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "$LABEL: the server did not stop within 10 s of SIGTERM; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# start_server LOG DATABASE_URL [NAME=VALUE...]: serves on a free port with those variables;
# 0 once /health answers (SERVER_BASE), otherwise 1 with SERVER_START_ERROR saying why.
start_server() {
    local log=$1 db=$2
    shift 2
    env "$@" RUST_LOG=info "$BIN" serve --database-url "$db" --bind 127.0.0.1:0 >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        SERVER_BASE=$(sed -nE 's/.*listening on (http:\/\/[0-9.:]+).*/\1/p' "$log" | head -n1)
        if [ -n "$SERVER_BASE" ] && curl -sf --max-time 2 "$SERVER_BASE/health" >/dev/null; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$log"
            SERVER_PID=
            SERVER_BASE=
            SERVER_START_ERROR="the server exited at start"
            return 1
        fi
        sleep 0.1
    done
    tail -n 50 "$log"
    stop_server
    SERVER_BASE=
    SERVER_START_ERROR="the server did not answer /health within 20 s"
    return 1
}
