package migrate

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// The canonical encoding of a row's values is exactly json.Marshal of
// the map of its members: the statehash of every stored event rests on
// it.
func TestCanonicalIsJSONMarshal(t *testing.T) {
	p := &plan{members: []string{"name", "<b>", "about", "email", "Zeta", "n", "vip", "nested", "ü"}}
	alphabet := []rune("ab Z09\"\\<>&\u2028\u2029\t\n\x01\x7féü€😀/")
	str := func(r *rand.Rand) string {
		rs := make([]rune, r.IntN(12))
		for i := range rs {
			rs[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(rs)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		vs := make([]any, len(p.members))
		m := map[string]any{}
		for j, name := range p.members {
			var v any
			switch r.IntN(7) {
			case 0:
				v = nil
			case 1, 2:
				v = str(r)
			case 3:
				v = json.Number("-12.5e3")
			case 4:
				v = r.IntN(2) == 0
			case 5:
				v = map[string]any{str(r): str(r), "k": []any{json.Number("1"), nil, true}}
			case 6:
				v = "plain text, with some words"
			}
			vs[j] = v
			if v != nil {
				m[name] = v
			}
		}
		got, err := p.canonical(nil, vs)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("canonical %s\nwant      %s", got, want)
		}
	}
}

// A row converted with a reused scratch is the row converted without
// one once kept, and keeping it copies its data out of the buffer the
// next row is converted into.
func TestConvertScratch(t *testing.T) {
	tmpl, err := parseTemplate("customers.{id}")
	if err != nil {
		t.Fatal(err)
	}
	tb := &Table{Table: "customers", Subject: "customers.{id}", tmpl: tmpl}
	p := &plan{t: tb, columns: []string{"id", "name", "n"}, types: []string{"INTEGER", "TEXT", "INTEGER"}, nkeys: 1, members: []string{"name", "n"}, tr: make([][]transform, 3), filter: tmpl.filter(), ntokens: len(tmpl.tokens)}
	var sc scratch
	var kept []row
	for i := range 50 {
		vals := []any{int64(i), "name <" + string(rune('a'+i%26)) + ">", int64(i * 1000)}
		want, err := p.convert(int64(i+1), vals, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.convert(int64(i+1), vals, &sc)
		if err != nil {
			t.Fatal(err)
		}
		if !sc.sameHash(want.hash) || got.hash != "" {
			t.Fatalf("row %d: scratch hash %s, want %s (row hash %q unset)", i, sc.hex[:], want.hash, got.hash)
		}
		sc.keep(&got)
		if got.hash != want.hash || string(got.data) != string(want.data) || got.aggregate != want.aggregate {
			t.Fatalf("row %d: kept %s %s %s, want %s %s %s", i, got.aggregate, got.hash, got.data, want.aggregate, want.hash, want.data)
		}
		kept = append(kept, got, want)
	}
	for i := 0; i < len(kept); i += 2 {
		if string(kept[i].data) != string(kept[i+1].data) {
			t.Fatalf("kept row %d was overwritten: %s, want %s", i/2, kept[i].data, kept[i+1].data)
		}
	}
}
