// Package embedded runs a NATS server with JetStream inside the process.
//
// It is what "jetsource serve" runs, and what tests use to talk to a real
// server without installing one: see
// [github.com/jetsource/jetsource/embedded/embeddedtest].
//
// # Durability
//
// By default the server stores streams in files under the data directory
// and syncs every write to disk before acknowledging it (fsync always).
// With the server's own default, acknowledged writes sit in the page cache
// for up to two minutes, and a power loss or kernel crash loses them; an
// independent analysis of NATS 2.12.1 in 2025 showed exactly that. The
// faster mode is an explicit opt-in: [WithSyncInterval].
//
// # Network
//
// The server listens on 127.0.0.1 unless told otherwise; [WithListen] with
// port 0 picks a free port. [Server.ClientURL] tells where it listens.
//
// With [WithDeferredListen] the client port stays closed until
// [Server.Listen]: the program connects in-process ([Server.Connect]),
// provisions its streams and starts its workers, and only then lets
// clients in, so that no client meets a half-started service ("jetsource
// serve" does this).
package embedded
