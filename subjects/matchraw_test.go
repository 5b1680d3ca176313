package subjects_test

import (
	"testing"

	"github.com/jetsource/jetsource/subjects"
)

func TestFilterMatchRaw(t *testing.T) {
	cases := []struct {
		filter, raw string
		want        bool
	}{
		{"users.>", "users.*.added", true},
		{"users.*.added", "users.*.added", true},
		{"users.A.added", "users.*.added", false},
		{"users.*", "users.*.added", false},
		{"groups.>", "users.*.added", false},
		{"users.>", "", false},
		{"users.>", "users", false},
		{"users.*.added", "users..added", true},
	}
	for _, c := range cases {
		t.Run(c.filter+"~"+c.raw, func(t *testing.T) {
			if got := subjects.MustParseFilter(c.filter).MatchRaw(c.raw); got != c.want {
				t.Errorf("MatchRaw(%q) = %v, want %v", c.raw, got, c.want)
			}
		})
	}
	if (subjects.Filter{}).MatchRaw("users.A") {
		t.Error("the zero filter matched")
	}
}
