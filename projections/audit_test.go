package projections_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

// auditEvent returns event i of the audit fixtures: actors, addresses
// (IPv4, IPv6, mapped, with a port, not an address, none) and subjects
// (flat, nested, another root) that cycle with different periods.
func auditEvent(i int) jetsource.Event {
	actors := []string{"alice", "bob", "carol", ""}
	ips := []string{"10.0.0.1", "10.0.0.2", "10.0.1.1", "2001:db8::1", "2001:db8:0:1::1", "::ffff:10.0.0.1", "10.0.0.2:5000", "not-an-ip", ""}
	subj := fmt.Sprintf("users.u%d.added", i%7)
	switch i % 11 {
	case 3:
		subj = "users.u1.sub.changed" // nested under users.u1
	case 5:
		subj = "groups.g1.added"
	case 8:
		subj = "users.u10.added" // shares the prefix "users.u1" but not the aggregate
	}
	return jetsource.Event{
		Subject:       subjects.MustParse(subj),
		Data:          fmt.Appendf(nil, `{"n":%d}`, i),
		Actor:         actors[i%len(actors)],
		ClientIP:      ips[i%len(ips)],
		CorrelationID: fmt.Sprintf("c%d", i%13),
	}
}

// appendAudit appends events first to first+n-1 of the fixtures in
// transactions of up to 250.
func appendAudit(tb testing.TB, st jetsource.Store, first, n int) {
	tb.Helper()
	ctx := context.Background()
	var batch []jetsource.Event
	for i := first; i < first+n; i++ {
		batch = append(batch, auditEvent(i))
		if len(batch) == 250 || i == first+n-1 {
			if _, err := st.AppendBatch(ctx, batch); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

func newAudit(tb testing.TB, dir string, opts ...projections.AuditOption) *projections.AuditIndex {
	tb.Helper()
	db, err := projections.OpenSQLite(filepath.Join(dir, "audit.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	a, err := projections.NewAuditIndex(context.Background(), db, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func collect(tb testing.TB, a *projections.AuditIndex, q projections.AuditQuery) []projections.AuditRecord {
	tb.Helper()
	var out []projections.AuditRecord
	for r, err := range a.Query(context.Background(), q) {
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// reference answers an audit query by reading the whole stream: what the
// index must agree with.
func reference(tb testing.TB, st jetsource.Store, q projections.AuditQuery) []uint64 {
	tb.Helper()
	var out []uint64
	for e, err := range st.Read(context.Background(), jetsource.Query{}) {
		if err != nil {
			tb.Fatal(err)
		}
		if e.Sequence <= q.After ||
			q.Actor != "" && e.Actor != q.Actor ||
			!q.Since.IsZero() && e.Stored.Before(q.Since) ||
			!q.Until.IsZero() && !e.Stored.Before(q.Until) ||
			!q.Entity.IsZero() && !strings.HasPrefix(e.Subject.String(), q.Entity.String()+".") {
			continue
		}
		if q.ClientIP.IsValid() {
			a, err := netip.ParseAddr(e.ClientIP)
			if err != nil {
				ap, err := netip.ParseAddrPort(e.ClientIP)
				if err != nil {
					continue
				}
				a = ap.Addr()
			}
			p := q.ClientIP
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			if !p.Contains(a.Unmap()) {
				continue
			}
		}
		out = append(out, e.Sequence)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out
}

func seqs(rs []projections.AuditRecord) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Sequence
	}
	return out
}

func TestAuditIndexQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("indexes 1500 events")
	}
	e := newEnv(t)
	ctx := context.Background()
	const n = 1500
	appendAudit(t, e.store, 0, n)
	a := newAudit(t, t.TempDir(), projections.WithAuditLocation("sqlite:test"))
	pr, err := a.CatchUp(ctx, e.store)
	if err != nil || pr.Applied != n || pr.Checkpoint != n || !pr.Done {
		t.Fatalf("catch up: %+v, %v", pr, err)
	}
	// Stored times of events in the middle bound the time queries.
	var stored []time.Time
	for ev, err := range e.store.Read(ctx, jetsource.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, ev.Stored)
	}
	since, until := stored[400], stored[1100]
	pfx := netip.MustParsePrefix
	one := func(s string) netip.Prefix { a := netip.MustParseAddr(s); return netip.PrefixFrom(a, a.BitLen()) }
	cases := []struct {
		name string
		q    projections.AuditQuery
		min  int // at least this many results, so that no case passes empty
	}{
		{"Actor", projections.AuditQuery{Actor: "alice"}, 300},
		{"ActorUnknown", projections.AuditQuery{Actor: "mallory"}, 0},
		{"IP", projections.AuditQuery{ClientIP: one("10.0.0.2")}, 300},              // with and without a port
		{"IPMatchesMapped", projections.AuditQuery{ClientIP: one("10.0.0.1")}, 300}, // 10.0.0.1 and ::ffff:10.0.0.1
		{"IPMappedQuery", projections.AuditQuery{ClientIP: one("::ffff:10.0.0.1")}, 300},
		{"IPv6", projections.AuditQuery{ClientIP: one("2001:db8::1")}, 150},
		{"Network24", projections.AuditQuery{ClientIP: pfx("10.0.0.0/24")}, 600},
		{"Network8", projections.AuditQuery{ClientIP: pfx("10.0.0.0/8")}, 800},
		{"NetworkV6", projections.AuditQuery{ClientIP: pfx("2001:db8::/32")}, 300},
		{"NetworkV6Narrow", projections.AuditQuery{ClientIP: pfx("2001:db8::/64")}, 150},
		{"NetworkAllV4", projections.AuditQuery{ClientIP: pfx("0.0.0.0/0")}, 800},
		{"NetworkUnmasked", projections.AuditQuery{ClientIP: pfx("10.0.0.77/24")}, 600},
		{"Entity", projections.AuditQuery{Entity: subjects.MustParse("users.u1")}, 200}, // with users.u1.sub, without users.u10
		{"EntityNested", projections.AuditQuery{Entity: subjects.MustParse("users.u1.sub")}, 100},
		{"EntityRoot", projections.AuditQuery{Entity: subjects.MustParse("groups")}, 100},
		{"Since", projections.AuditQuery{Since: since}, 1000},
		{"Until", projections.AuditQuery{Until: until}, 1000},
		{"TimeRange", projections.AuditQuery{Since: since, Until: until}, 600},
		{"ActorAndTime", projections.AuditQuery{Actor: "bob", Since: since, Until: until}, 150},
		{"ActorAndIP", projections.AuditQuery{Actor: "alice", ClientIP: pfx("10.0.0.0/8")}, 50},
		{"ActorAndEntity", projections.AuditQuery{Actor: "carol", Entity: subjects.MustParse("users.u1")}, 40},
		{"Everything", projections.AuditQuery{}, n},
		{"Limit", projections.AuditQuery{Actor: "alice", Limit: 7}, 7},
		{"After", projections.AuditQuery{Actor: "alice", After: 700, Limit: 10}, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := seqs(collect(t, a, c.q))
			want := reference(t, e.store, c.q)
			if !slices.Equal(got, want) {
				t.Fatalf("index gave %d events, the stream %d:\n got %v\nwant %v", len(got), len(want), got, want)
			}
			if len(got) < c.min {
				t.Fatalf("only %d events, want at least %d", len(got), c.min)
			}
		})
	}
	t.Run("RecordCarriesAttributes", func(t *testing.T) {
		rs := collect(t, a, projections.AuditQuery{After: 3, Limit: 1})
		var want jetsource.Event
		for ev, err := range e.store.Read(ctx, jetsource.Query{FromSequence: 4, Limit: 1}) {
			if err != nil {
				t.Fatal(err)
			}
			want = ev
		}
		r := rs[0]
		if r.Sequence != 4 || r.ID != want.ID || r.Type != want.Type || r.Subject != want.Subject || r.Aggregate != want.Aggregate() ||
			r.Actor != want.Actor || r.ClientIP != want.ClientIP || r.CorrelationID != want.CorrelationID || r.TransactionID != want.TransactionID ||
			!r.Stored.Equal(want.Stored) || !r.Time.Equal(want.Time) {
			t.Fatalf("record %+v\nevent %+v", r, want)
		}
		if ev := r.Event(); ev.Sequence != 4 || ev.ID != want.ID || ev.Subject != want.Subject {
			t.Fatalf("Event() = %+v", ev)
		}
	})
	t.Run("PagingCoversEverything", func(t *testing.T) {
		var all []uint64
		var after uint64
		for {
			page := collect(t, a, projections.AuditQuery{Actor: "bob", After: after, Limit: 50})
			if len(page) == 0 {
				break
			}
			all = append(all, seqs(page)...)
			after = page[len(page)-1].Sequence
		}
		if want := reference(t, e.store, projections.AuditQuery{Actor: "bob"}); !slices.Equal(all, want) {
			t.Fatalf("pages gave %d events, want %d", len(all), len(want))
		}
	})
	t.Run("IndexesAreUsed", func(t *testing.T) {
		for _, c := range []struct {
			where string
			args  []any
			index string
		}{
			{`actor = ?`, []any{"alice"}, "audit_actor"},
			{`ip = ?`, []any{netip.MustParseAddr("::ffff:10.0.0.1").AsSlice()}, "audit_ip"},
			{`ip BETWEEN ? AND ?`, []any{[]byte{0}, []byte{1}}, "audit_ip"},
			{`(aggregate = ? OR (aggregate >= ? AND aggregate < ?))`, []any{"users.u1", "users.u1.", "users.u1/"}, "audit_aggregate"},
			{`stored >= ? AND stored < ?`, []any{0, 1}, "audit_stored"},
		} {
			rows, err := a.DB().Query(`EXPLAIN QUERY PLAN SELECT seq FROM audit WHERE `+c.where+` ORDER BY seq`, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			rows.Close()
			t.Log(c.where, ": ", strings.Join(plan, "; "))
			if p := strings.Join(plan, "; "); !strings.Contains(p, c.index) || strings.Contains(p, "SCAN audit ") || strings.HasSuffix(p, "SCAN audit") {
				t.Errorf("%s: plan %q does not use %s", c.where, p, c.index)
			}
		}
	})
}

func TestAuditQueryRefusesBadInput(t *testing.T) {
	a := newAudit(t, t.TempDir())
	now := time.Now()
	for _, c := range []struct {
		name string
		q    projections.AuditQuery
	}{
		{"ErrNegativeLimit", projections.AuditQuery{Limit: -1}},
		{"ErrRangeBackwards", projections.AuditQuery{Since: now, Until: now.Add(-time.Second)}},
		{"ErrRangeEmpty", projections.AuditQuery{Since: now, Until: now}},
		{"ErrInvalidNetwork", projections.AuditQuery{ClientIP: netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 33)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, err := range a.Query(context.Background(), c.q) {
				if !errors.Is(err, projections.ErrInvalidOption) {
					t.Fatalf("got %v", err)
				}
				return
			}
			t.Fatal("no error")
		})
	}
	for _, c := range []struct {
		name string
		opt  projections.AuditOption
	}{
		{"ErrNameEmpty", projections.WithAuditName("")},
		{"ErrNameDash", projections.WithAuditName("audit-x")}, // a projection name, not a table name
		{"ErrNameReserved", projections.WithAuditName("jetsource_projections")},
		{"ErrNoFilters", projections.WithAuditFilters()},
		{"ErrEmptyFilter", projections.WithAuditFilters(subjects.Filter{})},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := openDB(t, t.TempDir())
			if _, err := projections.NewAuditIndex(context.Background(), db, c.opt); !errors.Is(err, projections.ErrInvalidOption) {
				t.Fatalf("got %v", err)
			}
			var n int
			db.QueryRow(`SELECT count(*) FROM sqlite_master`).Scan(&n)
			if n != 0 {
				t.Fatalf("a refused index created %d objects", n)
			}
		})
	}
}

func TestAuditCatchUpIsIncremental(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	appendAudit(t, e.store, 0, 1000)
	a := newAudit(t, dir, projections.WithAuditName("audit_users"), projections.WithAuditFilters(subjects.MustParseFilter("users.>")))
	var reports []projections.Progress
	pr, err := a.CatchUp(ctx, e.store, projections.WithRebuildBatchSize(100),
		projections.WithProgress(func(p projections.Progress) { reports = append(reports, p) }, 0))
	users := len(reference(t, e.store, projections.AuditQuery{Entity: subjects.MustParse("users")}))
	if err != nil || pr.Applied != uint64(users) || pr.Checkpoint != 1000 || pr.Target != 1000 {
		t.Fatalf("first catch up: %+v, %v (want %d applied)", pr, err, users)
	}
	if len(reports) < 5 || !reports[len(reports)-1].Done || reports[0].Done {
		t.Fatalf("%d progress reports: %+v", len(reports), reports)
	}
	if got := len(collect(t, a, projections.AuditQuery{Entity: subjects.MustParse("groups")})); got != 0 {
		t.Fatalf("%d groups events indexed under a users.> filter", got)
	}

	appendAudit(t, e.store, 1000, 50)
	pr, err = a.CatchUp(ctx, e.store)
	newUsers := len(reference(t, e.store, projections.AuditQuery{Entity: subjects.MustParse("users"), After: 1000}))
	if err != nil || pr.Applied != uint64(newUsers) || pr.Checkpoint != 1050 {
		t.Fatalf("second catch up read %d events, want only the %d new ones: %+v, %v", pr.Applied, newUsers, pr, err)
	}
	pr, err = a.CatchUp(ctx, e.store)
	if err != nil || pr.Applied != 0 || pr.Checkpoint != 1050 || !pr.Done {
		t.Fatalf("third catch up: %+v, %v", pr, err)
	}
	if got := len(collect(t, a, projections.AuditQuery{})); got != users+newUsers {
		t.Fatalf("%d rows, want %d", got, users+newUsers)
	}
	// A second index in the same database, of every event.
	all, err := projections.NewAuditIndex(ctx, a.DB())
	if err != nil {
		t.Fatal(err)
	}
	if pr, err := all.CatchUp(ctx, e.store); err != nil || pr.Applied != 1050 {
		t.Fatalf("second index: %+v, %v", pr, err)
	}
	st, err := projections.StatusOf(ctx, e.store, all)
	if err != nil || st.Lag != 0 || st.Checkpoint != 1050 {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// consistent checks that the index holds exactly the events up to its
// checkpoint, each once.
func consistent(t *testing.T, a *projections.AuditIndex) uint64 {
	t.Helper()
	cp := checkpointOf(t, a)
	var rows, maxSeq, distinct uint64
	if err := a.DB().QueryRow(`SELECT count(*), coalesce(max(seq), 0), count(DISTINCT id) FROM `+a.Table()).Scan(&rows, &maxSeq, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != cp || maxSeq != cp || distinct != cp {
		t.Fatalf("checkpoint %d, but %d rows up to %d with %d distinct ids", cp, rows, maxSeq, distinct)
	}
	return cp
}

func TestAuditRestartSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("indexes 3000 events, interrupted and resumed")
	}
	e := newEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	appendAudit(t, e.store, 0, 3000)

	t.Run("CancelledCatchUpKeepsRowsAndCheckpointTogether", func(t *testing.T) {
		a := newAudit(t, dir)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		_, err := a.CatchUp(cctx, e.store, projections.WithRebuildBatchSize(200),
			projections.WithProgress(func(p projections.Progress) {
				if p.Checkpoint >= 1000 {
					cancel()
				}
			}, 0))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		cp := consistent(t, a)
		if cp < 1000 || cp >= 3000 {
			t.Fatalf("checkpoint %d after cancelling", cp)
		}
		a.DB().Close()
	})
	t.Run("ReopenedIndexResumes", func(t *testing.T) {
		a := newAudit(t, dir) // the same file
		before := checkpointOf(t, a)
		pr, err := a.CatchUp(ctx, e.store)
		if err != nil || pr.Applied != 3000-before || pr.Checkpoint != 3000 {
			t.Fatalf("resume from %d: %+v, %v", before, pr, err)
		}
		consistent(t, a)
	})
	parent := t
	t.Run("ServerRestartBetweenRuns", func(t *testing.T) {
		a := newAudit(t, dir)
		e.srv = embeddedtest.Restart(parent, e.srv) // the restarted server lives as long as the whole test
		waitFor(t, 20*time.Second, "reconnect", e.nc.IsConnected)
		appendAudit(t, e.store, 3000, 100)
		pr, err := a.CatchUp(ctx, e.store)
		if err != nil || pr.Applied != 100 || pr.Checkpoint != 3100 {
			t.Fatalf("%+v, %v", pr, err)
		}
		consistent(t, a)
	})
	t.Run("RunnerAndCatchUpShareTheIndex", func(t *testing.T) {
		a := newAudit(t, dir)
		r, err := projections.NewRunner(e.store, []projections.Projection{a}, projections.WithBatchSize(50))
		if err != nil {
			t.Fatal(err)
		}
		stop := runRunner(t, r)
		appended := make(chan struct{})
		go func() { defer close(appended); appendAudit(t, e.store, 3100, 1000) }()
		var errs []error
		for range 5 {
			if _, err := a.CatchUp(ctx, e.store, projections.WithRebuildBatchSize(70)); err != nil {
				errs = append(errs, err)
			}
		}
		<-appended
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		waitFor(t, 20*time.Second, "the runner", func() bool { return checkpointOf(t, a) == 4100 })
		stop()
		consistent(t, a)
	})
	t.Run("RebuildSwapsInAFreshIndex", func(t *testing.T) {
		a := newAudit(t, dir)
		if _, err := a.DB().Exec(`DELETE FROM audit WHERE actor = 'alice'`); err != nil { // damage it
			t.Fatal(err)
		}
		if _, err := projections.Rebuild(ctx, e.store, a); err != nil {
			t.Fatal(err)
		}
		consistent(t, a)
		q := projections.AuditQuery{Actor: "alice"}
		if got, want := seqs(collect(t, a, q)), reference(t, e.store, q); !slices.Equal(got, want) || len(got) == 0 {
			t.Fatalf("after rebuild: %d events, want %d", len(got), len(want))
		}
	})
}

// FuzzAuditClientIP stores an event with an arbitrary clientip and checks
// that an address query finds it exactly when the attribute is an address
// (with or without a port) inside the queried network.
func FuzzAuditClientIP(f *testing.F) {
	f.Add("10.0.0.1", "10.0.0.0/8")                         // IPv4 in its network
	f.Add("10.0.0.1:80", "10.0.0.1/32")                     // with a port
	f.Add("::ffff:10.0.0.1", "10.0.0.0/24")                 // mapped, IPv4 query
	f.Add("10.0.0.1", "::ffff:10.0.0.0/120")                // IPv4, mapped query
	f.Add("[fe80::1%eth0]:443", "fe80::/10")                // zone and port
	f.Add("2001:db8::1", "2001:db8::/129")                  // invalid network
	f.Add("not an ip", "0.0.0.0/0")                         // never found
	f.Add("", "::/0")                                       // no address
	f.Add("255.255.255.255", "255.255.255.255/32")          // top of the range
	f.Add("ffff:ffff::", "ffff:ffff:ffff::/48")             // outside
	f.Add(" 10.0.0.1 ", "10.0.0.0/8")                       // spaces
	f.Add("1.2.3.4", "1.2.3.4/0")                           // unmasked network
	f.Add("::ffff:1.2.3.4%z", "::ffff:1.2.3.4/128")         // mapped with zone
	f.Add("0.0.0.0", "::/0")                                // IPv4 in the IPv6 world
	f.Add("2001:db8::8000:0:0:0", "2001:db8::/65")          // just outside
	f.Add("2001:db8::7fff:ffff:ffff:ffff", "2001:db8::/65") // just inside
	dir := f.TempDir()
	db, err := projections.OpenSQLite(filepath.Join(dir, "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	a, err := projections.NewAuditIndex(ctx, db)
	if err != nil {
		f.Fatal(err)
	}
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, clientIP, network string) {
		mu.Lock()
		defer mu.Unlock()
		cp := checkpointOf(t, a)
		ev := jetsource.Event{Subject: subjects.MustParse("users.A.added"), ClientIP: clientIP, Sequence: cp + 1, Stored: time.Now(), ID: "x"}
		if _, err := a.Apply(ctx, cp, []jetsource.Event{ev}); err != nil {
			t.Fatal(err)
		}
		p, perr := netip.ParsePrefix(network)
		var found bool
		for r, err := range a.Query(ctx, projections.AuditQuery{ClientIP: p, After: cp}) {
			if err != nil {
				if perr == nil && p.IsValid() {
					t.Fatalf("valid network %s: %v", p, err)
				}
				return
			}
			if r.ClientIP != clientIP {
				t.Fatalf("stored %q, read %q", clientIP, r.ClientIP)
			}
			found = true
		}
		if perr != nil || !p.IsValid() {
			if !found {
				t.Fatalf("no network: the event must be found")
			}
			return
		}
		// The model: a parsed address, unmapped, without zone, inside
		// the (unmapped) network.
		s := strings.TrimSpace(clientIP)
		addr, err := netip.ParseAddr(s)
		if err != nil {
			ap, err2 := netip.ParseAddrPort(s)
			if err2 != nil {
				if found {
					t.Fatalf("%q is no address but matched %s", clientIP, p)
				}
				return
			}
			addr = ap.Addr()
		}
		addr = addr.Unmap().WithZone("")
		q := p.Masked()
		if q.Addr().Is4In6() && q.Bits() >= 96 {
			q = netip.PrefixFrom(q.Addr().Unmap(), q.Bits()-96)
		}
		want := q.Contains(addr)
		if !want && q.Addr().Is6() && addr.Is4() {
			// The index stores IPv4 as mapped IPv6: an IPv6 network
			// holding ::ffff:0:0/96 covers IPv4 addresses.
			want = q.Contains(netip.AddrFrom16(addr.As16()))
		}
		if found != want {
			t.Fatalf("%q in %s: found %v, want %v", clientIP, p, found, want)
		}
	})
}

// BenchmarkAuditActor measures one actor's 100 events in a 100,000-event
// stream: through the index, and by reading the whole stream as a query
// without an index must. It also reports the first catch-up's rate and
// the index's size per event.
func BenchmarkAuditActor(b *testing.B) {
	const total, needle = 100_000, 100
	srv := embeddedtest.Run(b)
	nc := embeddedtest.Connect(b, srv)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}}); err != nil {
		b.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "EVENTS", jetstore.WithTimeout(30*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	var batch []jetsource.Event
	for i := range total {
		actor := fmt.Sprintf("user%d", i%1000)
		if i%(total/needle) == 0 {
			actor = "needle"
		}
		batch = append(batch, jetsource.Event{
			Subject:  subjects.MustParse(fmt.Sprintf("users.u%d.changed", i%5000)),
			Data:     fmt.Appendf(nil, `{"n":%d,"note":"a typical small payload"}`, i),
			Actor:    actor,
			ClientIP: fmt.Sprintf("10.%d.%d.%d", i%7, i%250, i%200),
		})
		if len(batch) == jetsource.MaxBatch {
			if _, err := st.AppendBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	dir := b.TempDir()
	a := newAudit(b, dir)
	start := time.Now()
	pr, err := a.CatchUp(ctx, st)
	if err != nil || pr.Applied != total {
		b.Fatalf("%+v, %v", pr, err)
	}
	catchUp := time.Since(start)
	if _, err := a.DB().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	q := projections.AuditQuery{Actor: "needle"}
	b.Run("Index", func(b *testing.B) {
		for b.Loop() {
			if n := len(collect(b, a, q)); n != needle {
				b.Fatalf("%d events", n)
			}
		}
		b.ReportMetric(float64(total)/catchUp.Seconds(), "catchup_events/s")
		b.ReportMetric(float64(fi.Size())/total, "index_bytes/event")
	})
	b.Run("StreamScan", func(b *testing.B) {
		for b.Loop() {
			var n int
			for ev, err := range st.Read(ctx, jetsource.Query{}) {
				if err != nil {
					b.Fatal(err)
				}
				if ev.Actor == "needle" {
					n++
				}
			}
			if n != needle {
				b.Fatalf("%d events", n)
			}
		}
	})
}
