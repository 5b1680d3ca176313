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
		got, err := p.canonical(vs)
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
