#!/usr/bin/env bash
# Migration from a CRUD database, end to end: installs PostgreSQL (and the
# sqlite3 shell) from the distribution's packages when missing, starts a
# throwaway cluster as an unprivileged user on a loopback port, runs the
# PostgreSQL tests of ./migrate against it (JETSOURCE_TEST_POSTGRES), then
# the README's migration walkthrough with the built binary: migrate the
# sample shop (testdata/migrate), change it upstream, sync, sync again,
# once from SQLite and once from PostgreSQL.
#
# Standalone: bash .ci/migrate.sh (as root on a fresh Debian machine, or as
# a user that has psql, pg_ctl and sqlite3 already).
set -euo pipefail
cd "$(dirname "$0")/.."
name=migrate
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

work=$(mktemp -d)
chmod 755 "$work"
serve_pid=""
pg_dir=""
pg_user=""
as_pg() { if [ -n "$pg_user" ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi; }
cleanup() {
	if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then kill -TERM "$serve_pid"; wait "$serve_pid" || true; fi
	if [ -n "$pg_dir" ] && [ -f "$pg_dir/postmaster.pid" ]; then as_pg "$pg_bin/pg_ctl" -D "$pg_dir" -m immediate stop >/dev/null 2>&1 || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "$name: FAIL: $*" >&2; for f in "$work/serve.log" "$work/pg.log"; do [ -f "$f" ] && tail -n 20 "$f" >&2; done; exit 1; }

# --- PostgreSQL and sqlite3 from the distribution --------------------------
find_pg_bin() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
	done
	command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return 0; }
	return 1
}
need=()
find_pg_bin >/dev/null || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
command -v sqlite3 >/dev/null || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || fail "missing ${need[*]}: run as root to install them, or install them first"
	echo "$name: installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
pg_bin=$(find_pg_bin) || fail "no pg_ctl after installing postgresql"

# PostgreSQL refuses to run as root: use the postgres account of the
# package (or create a user) when we are root.
if [ "$(id -u)" -eq 0 ]; then
	pg_user=postgres
	id "$pg_user" >/dev/null 2>&1 || useradd --system --no-create-home "$pg_user"
fi
pg_dir="$work/pg"
mkdir -p "$pg_dir"
[ -z "$pg_user" ] || chown "$pg_user" "$pg_dir"
as_pg "$pg_bin/initdb" -D "$pg_dir" -U postgres --auth=trust -E UTF8 --no-locale >"$work/pg.log" 2>&1 || fail "initdb"

free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
	done
	return 1
}
pg_port=$(free_port) || fail "no free port"
as_pg "$pg_bin/pg_ctl" -D "$pg_dir" -l "$pg_dir/server.log" -w -t 60 \
	-o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >>"$work/pg.log" 2>&1 || { cat "$pg_dir/server.log" >&2 || true; fail "pg_ctl start"; }
export JETSOURCE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
echo "$name: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"

# --- the PostgreSQL tests ---------------------------------------------------
go test -race -count=1 -run 'Postgres' ./migrate

# --- the README walkthrough with the built binary --------------------------
go build -o "$work/jetsource" ./cmd/jetsource
js="$work/jetsource"
mapping=testdata/migrate/mapping.yaml

start_serve() { # $1: the configuration (default testdata/migrate/config.yaml)
	rm -rf "$work/data"
	"$js" serve --config "${1:-testdata/migrate/config.yaml}" --listen 127.0.0.1:0 --data "$work/data" >"$work/serve.log" 2>&1 &
	serve_pid=$!
	for _ in $(seq 1 100); do
		if grep -q 'jetsource serving' "$work/serve.log"; then break; fi
		kill -0 "$serve_pid" 2>/dev/null || fail "serve exited early"
		sleep 0.1
	done
	NATS_URL=$(grep -o 'url=nats://[0-9.]*:[0-9]*' "$work/serve.log" | head -n 1 | cut -d= -f2)
	[ -n "$NATS_URL" ] || fail "serve did not start"
	export NATS_URL
}
stop_serve() { kill -TERM "$serve_pid"; wait "$serve_pid" || fail "serve exited with $? on SIGTERM"; serve_pid=""; }
expect() { # $1: what, $2: got, $3: want
	[ "$2" = "$3" ] || fail "$1: got $2, want $3"
	echo "$name: $1: $2"
}

walkthrough() { # $1: label, $2: source, $3: command that runs SQL on standard input
	local label=$1 source=$2 sqlcmd=$3
	start_serve
	expect "$label migrate" "$("$js" migrate --mapping "$mapping" --source "$source" -o json)" '{"new":11,"changed":0,"deleted":0,"unchanged":0}'
	expect "$label migrate again" "$("$js" migrate --mapping "$mapping" --source "$source" -o json)" '{"new":0,"changed":0,"deleted":0,"unchanged":11}'
	$sqlcmd <<-'SQL'
		UPDATE customers SET email = 'bob@new.example' WHERE id = 2;
		INSERT INTO customers (id, name, country) VALUES (6, 'Finn Fox', 'IE');
		DELETE FROM orders WHERE id = 104;
	SQL
	expect "$label sync" "$("$js" sync --mapping "$mapping" --source "$source" -o json)" '{"new":1,"changed":1,"deleted":1,"unchanged":9}'
	expect "$label sync again" "$("$js" sync --mapping "$mapping" --source "$source" -o json)" '{"new":0,"changed":0,"deleted":0,"unchanged":11}'
	"$js" events 'customers.2.>' -o json | grep -q '"subject":"customers.2.changed".*"data":{"email":"bob@new.example"}' || fail "$label: no merge patch on customers.2"
	"$js" events 'orders.104.>' -o json | grep -q '"subject":"orders.104.deleted"' || fail "$label: orders.104 not deleted"
	state=$("$js" state customers.2 -o json --snapshot-bucket '')
	case "$state" in *'"email":"bob@new.example"'*'"name":"Bob Baker"'*) ;; *) fail "$label: state of customers.2: $state" ;; esac
	stop_serve
}

sqlite3 "$work/shop.db" <testdata/migrate/shop.sql
walkthrough sqlite "sqlite:$work/shop.db" "sqlite3 $work/shop.db"

# --- a webhook receiving the migrated events (README) ------------------------
go build -o "$work/webhook-receiver" ./examples/webhook-receiver
"$work/webhook-receiver" --listen 127.0.0.1:0 >"$work/hook.log" 2>&1 &
hook_pid=$!
for _ in $(seq 1 100); do grep -q '^listening on' "$work/hook.log" && break; sleep 0.1; done
hook_url=$(sed -n 's/^listening on //p' "$work/hook.log")
[ -n "$hook_url" ] || fail "webhook receiver did not start"
sed "s#http://127.0.0.1:8099#$hook_url#" testdata/migrate/webhook.yaml >"$work/webhook.yaml"
sed "s#file: webhook.yaml#file: $work/webhook.yaml#" testdata/migrate/config-webhook.yaml >"$work/config-webhook.yaml"
sqlite3 "$work/hook.db" <testdata/migrate/shop.sql
start_serve "$work/config-webhook.yaml"
expect "webhook migrate" "$("$js" migrate --mapping "$mapping" --source "sqlite:$work/hook.db" -o json)" '{"new":11,"changed":0,"deleted":0,"unchanged":0}'
for _ in $(seq 1 300); do [ "$(grep -c '^customers.imported ' "$work/hook.log")" = 5 ] && break; sleep 0.1; done
expect "webhook customers received" "$(grep -c '^customers.imported ' "$work/hook.log")" 5
grep -q '^customers.imported customers.2.imported {.*"name":"Bob Baker"' "$work/hook.log" || fail "webhook: no event of customers.2"
stop_serve
kill "$hook_pid"; wait "$hook_pid" 2>/dev/null || true

as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres shop
psql_shop="psql -q -v ON_ERROR_STOP=1 postgres://postgres@127.0.0.1:$pg_port/shop"
$psql_shop -f testdata/migrate/shop.sql >/dev/null
walkthrough postgres "postgres://postgres@127.0.0.1:$pg_port/shop?sslmode=disable" "$psql_shop"

echo "$name: passed"
