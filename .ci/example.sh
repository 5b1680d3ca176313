#!/usr/bin/env bash
# End-to-end walkthrough of the example domain with the built binary, the
# same steps as the README and cmd/jetsource/example_test.go: serve with
# testdata/example/config.yaml, send commands, toggle the feature flag of
# the join-default-group handler at run time (it takes effect without a
# restart), publish with the nats CLI, read state, events and the
# group-members projection, stop with SIGTERM (clean, in reverse order),
# restart and check that the handler resumes.
set -euo pipefail
cd "$(dirname "$0")/.."

name=example
# shellcheck source=lib.sh
source .ci/lib.sh
config=testdata/example/config.yaml
flagfile=testdata/example/flags.yaml

start_serve() { # $1: listen address
	"$js" serve --config "$config" --listen "$1" --data "$work/data" >"$work/serve.log" 2>&1 &
	serve_pid=$!
	for _ in $(seq 1 150); do
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
	local last=0 n
	for step in 'stopped handlers' 'stopped flag watcher' 'stopped projections' 'stopped command workers' 'msg=stopped'; do
		n=$(grep -n "$step" "$work/serve.log" | head -n 1 | cut -d: -f1)
		[ -n "$n" ] && [ "$n" -gt "$last" ] || fail "'$step' missing or out of order in the serve log"
		last=$n
	done
}
# wait_for DESCRIPTION COMMAND...: polls COMMAND for up to 10 s.
wait_for() {
	local what=$1
	shift
	for _ in $(seq 1 100); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	fail "timed out: $what"
}
member() { # $1: user id
	"$js" events "groups.acme.default.members.$1.>" -o json | grep -q '"actor":"handler:join-default-group"'
}
# held: the handler's worker holds an event it has not acknowledged (paused).
held() {
	"$nats" consumer info EVENTS handler-join-default-group --json | grep -Eq '"num_ack_pending": *[1-9]'
}
caught_up() {
	"$js" projections status --config "$config" -o json | grep -q '"name":"group-members".*"lag":0,'
}

start_serve 127.0.0.1:0
url=$(grep -o 'url=nats://[0-9.]*:[0-9]*' "$work/serve.log" | head -n 1 | cut -d= -f2)
[ -n "$url" ] || fail "no URL in the serve log"
export NATS_URL="$url"
echo "example: serving at $url"
grep -q 'serving commands.*InsertUser' "$work/serve.log" || fail "the example commands are not served"

# The flag is off (the flag file's default): the handler pauses.
"$js" flags list --file "$flagfile" | grep -Eq 'join-default-group +off +file' || fail "join-default-group is not off by default"
out=$("$js" command InsertUser '{"company":"acme","id":"ann","name":"Ann","username":"ann"}' --actor admin) || fail "InsertUser ann"
[ "$out" = $'accepted\nsequences: 1 2' ] || fail "InsertUser printed '$out'"
wait_for "the handler holds ann's event" held
member ann && fail "ann joined the default group while the flag is off"

# On: the paused handler goes on without a restart.
out=$("$js" flags set join-default-group on --file "$flagfile" --actor alice) || fail "flags set on"
echo "$out" | grep -q 'off (file) -> on (kv)' || fail "flags set printed '$out'"
wait_for "ann joins the default group once the flag is on" member ann

# A plain publish is an event too; the handler reacts to it.
"$nats" pub users.acme.bob.inserted '{"name":"Bob","username":"bob"}' >/dev/null 2>&1 || fail "nats pub"
wait_for "bob joins the default group" member bob

# Off again: the next user waits; on: it joins.
"$js" flags set join-default-group off --file "$flagfile" --actor alice >/dev/null || fail "flags set off"
sleep 0.5 # the serve process sees the toggle within milliseconds
"$js" command InsertUser '{"company":"acme","id":"carl","name":"Carl","username":"carl"}' >/dev/null || fail "InsertUser carl"
wait_for "the handler holds carl's event" held
member carl && fail "carl joined while the flag is off"
"$js" flags set join-default-group on --file "$flagfile" --actor alice >/dev/null || fail "flags set on again"
wait_for "carl joins once the flag is on again" member carl

# State, events, the projection.
"$js" state users.acme.ann -o json | grep -q '"state":{"name":"Ann","username":"ann"}' || fail "state of users.acme.ann"
"$js" events >"$work/events.txt" || fail "events"
[ "$(grep -c 'groups.acme.default.members.*handler:join-default-group' "$work/events.txt")" -eq 3 ] || fail "want 3 memberships: $(cat "$work/events.txt")"
wait_for "the group-members projection catches up" caught_up
"$nats" kv ls group-members >"$work/members.txt" 2>&1 || fail "nats kv ls group-members"
for u in ann bob carl; do grep -q "groups.acme.default.members.$u" "$work/members.txt" || fail "no $u in group-members: $(cat "$work/members.txt")"; done

# The domain's rules: a member cannot be deleted.
rc=0
"$js" command DeleteUser '{"company":"acme","id":"ann"}' >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 4 ] || fail "DeleteUser of a member exited $rc, want 4 (rejected)"

echo "example: restarting the server"
port=${url##*:}
stop_serve
start_serve "127.0.0.1:$port"
grep -q 'handler gated by a flag.*value=on source=kv' "$work/serve.log" || fail "the flag's value did not survive the restart"
"$js" command InsertUser '{"company":"acme","id":"dora","name":"Dora","username":"dora"}' >/dev/null || fail "InsertUser dora"
wait_for "dora joins after the restart" member dora
stop_serve
echo "example: 1 passed, 0 failed"
