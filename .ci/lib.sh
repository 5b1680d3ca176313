# Shared by the end-to-end scripts: a work directory removed on exit (after
# stopping a server left running), fail, and the built jetsource and nats
# binaries. Set name (the script's name in messages) before sourcing.
work=$(mktemp -d)
bin="$work/bin"
mkdir -p "$bin"
serve_pid=""
cleanup() {
	if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then kill -TERM "$serve_pid"; wait "$serve_pid" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "$name: FAIL: $*" >&2; [ -f "$work/serve.log" ] && tail -n 30 "$work/serve.log" >&2; exit 1; }

echo "$name: building jetsource and the nats CLI"
go build -o "$bin/jetsource" ./cmd/jetsource
(cd .ci/natscli && go build -o "$bin/nats" github.com/nats-io/natscli/nats)
js="$bin/jetsource"
nats="$bin/nats"
