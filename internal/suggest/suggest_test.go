package suggest_test

import (
	"testing"

	"github.com/jetsource/jetsource/internal/suggest"
)

func TestClosest(t *testing.T) {
	known := []string{"listen", "data", "sync", "join-default-group"}
	for _, c := range []struct{ in, want string }{
		{"lisen", "listen"},
		{"join-default-grop", "join-default-group"},
		{"listen", ""}, // no typo
		{"zzzzzz", ""}, // too far
		{"dtaa", "data"},
	} {
		if got := suggest.Closest(c.in, known); got != c.want {
			t.Errorf("Closest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
