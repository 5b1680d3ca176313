#!/usr/bin/env bash
# End-to-end check of the command-line contract: build jetsource and the nats
# CLI, serve on a free port, publish with both, read back, check a stale
# --expect exits 3, restart the server and check nothing was lost.
set -euo pipefail
cd "$(dirname "$0")/.."

name=e2e
# shellcheck source=lib.sh
source .ci/lib.sh

start_serve() { # $1: listen address
	"$js" serve --listen "$1" --data "$work/data" >"$work/serve.log" 2>&1 &
	serve_pid=$!
	for _ in $(seq 1 100); do
		if grep -q 'jetsource serving' "$work/serve.log"; then return 0; fi
		kill -0 "$serve_pid" 2>/dev/null || fail "serve exited early"
		sleep 0.1
	done
	fail "serve did not start"
}
stop_serve() {
	kill -TERM "$serve_pid"
	local rc=0
	wait "$serve_pid" || rc=$?
	serve_pid=""
	[ "$rc" -eq 0 ] || fail "serve exited with $rc on SIGTERM"
	grep -q 'stopped' "$work/serve.log" || fail "serve did not log a clean stop"
}

start_serve 127.0.0.1:0
url=$(grep -o 'url=nats://[0-9.]*:[0-9]*' "$work/serve.log" | head -n 1 | cut -d= -f2)
[ -n "$url" ] || fail "no URL in the serve log"
export NATS_URL="$url"
echo "e2e: serving at $url"

"$nats" pub users.A.added '{"name":"Ann"}' >/dev/null 2>&1 || fail "nats pub"
seq=$("$js" append users.A.renamed '{"name":"Anne"}' --expect 1 --actor alice) || fail "append with --expect 1"
[ "$seq" = "2" ] || fail "append printed $seq, want 2"

"$js" events --output json >"$work/events1.json" || fail "events"
[ "$(wc -l <"$work/events1.json")" -eq 2 ] || fail "want 2 events, got: $(cat "$work/events1.json")"
grep -q '"subject":"users.A.added".*"data":{"name":"Ann"}.*"sequence":"1"' "$work/events1.json" || fail "nats pub event not read back: $(cat "$work/events1.json")"
grep -q '"type":"users.added"' "$work/events1.json" || fail "type not derived from the subject"
grep -q '"id":"EVENTS-1"' "$work/events1.json" || fail "id not derived from stream and sequence"
grep -q '"subject":"users.A.renamed".*"actor":"alice".*"sequence":"2"' "$work/events1.json" || fail "append event not read back: $(cat "$work/events1.json")"

rc=0
out=$("$js" append users.A.renamed '{"name":"X"}' --expect 1 2>/dev/null) || rc=$?
[ "$rc" -eq 3 ] || fail "stale --expect exited $rc, want 3"
[ "$out" = "2" ] || fail "conflict printed '$out', want the current sequence 2"

rc=0; "$js" append 'users.*.x' '{}' 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "wildcard subject exited $rc, want 2"
rc=0; "$js" append users.A.x '{bad' 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "invalid JSON exited $rc, want 1"
rc=0; "$js" events --server nats://127.0.0.1:1 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "unreachable server exited $rc, want 1"

echo "e2e: restarting the server"
port=${url##*:}
stop_serve
start_serve "127.0.0.1:$port"
"$js" events --output json >"$work/events2.json" || fail "events after restart"
cmp -s "$work/events1.json" "$work/events2.json" || fail "events changed across the restart: $(diff "$work/events1.json" "$work/events2.json")"
seq=$("$js" append users.A.renamed '{"name":"Anna"}' --expect 2) || fail "append after restart"
[ "$seq" = "3" ] || fail "append after restart printed $seq, want 3"
stop_serve
echo "e2e: 1 passed, 0 failed"
