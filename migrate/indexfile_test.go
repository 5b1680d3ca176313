package migrate

import (
	"fmt"
	"path/filepath"
	"testing"
)

// An index file reads back as it was written, its entries' strings
// sharing the file's memory: loading allocates per file, not per entry.
func TestLoadIndexShares(t *testing.T) {
	s := newSurface()
	for i := range 1000 {
		en := &s.ents[s.put(fmt.Sprintf("customers.%d", i))]
		en.seq = uint64(i + 1)
		switch i % 3 {
		case 0:
			en.hash = fmt.Sprintf("%032x", i)
			en.state = fmt.Appendf(nil, `{"n":%d}`, i)
		case 1:
			en.deleted, en.hash = true, deletedHash
		}
	}
	path := filepath.Join(t.TempDir(), "x.idx")
	meta := indexMeta{Stream: "S", Filter: "customers.*", Last: 1000, Msgs: 1000}
	if err := saveIndex(path, meta, s); err != nil {
		t.Fatal(err)
	}
	m, got, err := loadIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Stream != meta.Stream || m.Last != meta.Last || len(got.ents) != len(s.ents) {
		t.Fatalf("loaded %+v with %d entries, want %+v with %d", m, len(got.ents), meta, len(s.ents))
	}
	for i, want := range s.ents {
		en := got.ents[i]
		if en.agg != want.agg || en.seq != want.seq || en.hash != want.hash || en.deleted != want.deleted || string(en.state) != string(want.state) || got.pos[en.agg] != i {
			t.Fatalf("entry %d: %+v, want %+v", i, en, want)
		}
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, _, err := loadIndex(path); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 200 {
		t.Fatalf("loading 1000 entries: %.0f allocations, want them sharing the file's memory", allocs)
	}
}
