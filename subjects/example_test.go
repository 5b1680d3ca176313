package subjects_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jetsource/jetsource/subjects"
)

func ExampleParse() {
	s, err := subjects.Parse("users.A.added")
	if err != nil {
		panic(err)
	}
	fmt.Println(s)
	fmt.Println(s.Aggregate(), s.Event())
	fmt.Println(s.AggregateFilter())

	_, err = subjects.Parse("users.*.added")
	fmt.Println(errors.Is(err, subjects.ErrInvalidSubject), errors.Is(err, subjects.ErrInvalidToken))
	// Output:
	// users.A.added
	// users.A added
	// users.A.>
	// true true
}

func ExampleJoin() {
	// An identifier from outside may hold dots or other bytes that are not
	// allowed in a token: escape it first.
	email := "ann@example.com"
	s, err := subjects.Join("users", subjects.Escape(email), "added")
	if err != nil {
		panic(err)
	}
	fmt.Println(s)

	// Join escapes nothing and names the bad token.
	_, err = subjects.Join("users", email, "added")
	fmt.Println(err)
	// Output:
	// users.ann=40example=2Ecom.added
	// subjects: invalid subject: subjects: invalid token: "ann@example.com" (token 2): contains '.'
}

func ExampleSubject_Append() {
	agg := subjects.MustParse("orders.42")
	s, err := agg.Append("placed")
	if err != nil {
		panic(err)
	}
	fmt.Println(s, s.NumTokens(), s.Token(1))
	// Output:
	// orders.42.placed 3 42
}

func ExampleSubject_AggregateFilter() {
	added := subjects.MustParse("users.A.added")
	removed := subjects.MustParse("users.A.removed")

	// Every event of an aggregate gives the same filter, as one string.
	fmt.Println(added.AggregateFilter(), added.AggregateFilter() == removed.AggregateFilter())

	// A one-token subject has no aggregate.
	fmt.Println(subjects.MustParse("users").AggregateFilter().IsZero())
	// Output:
	// users.A.> true
	// true
}

func ExampleFilter_Match() {
	f := subjects.MustParseFilter("users.*.added")
	fmt.Println(f.Match(subjects.MustParse("users.A.added")))
	fmt.Println(f.Match(subjects.MustParse("users.A.B.added")))
	fmt.Println(f.MatchString("users.B.added"))
	fmt.Println(f.MatchString("users.*.added")) // not a literal subject
	// Output:
	// true
	// false
	// true
	// false
}

func ExampleFilter_Covers() {
	users := subjects.MustParseFilter("users.>")
	userA := subjects.MustParseFilter("users.A.>")
	added := subjects.MustParseFilter("users.*.added")
	fmt.Println(users.Covers(userA), userA.Covers(users))
	fmt.Println(userA.Covers(added), userA.Overlaps(added))
	// Output:
	// true false
	// false true
}

func ExampleCanonical() {
	fs := subjects.Canonical(
		subjects.MustParseFilter("users.B.>"),
		subjects.MustParseFilter("orders.>"),
		subjects.MustParseFilter("users.A.>"),
		subjects.MustParseFilter("orders.7.placed"), // covered by orders.>
		subjects.MustParseFilter("users.B.>"),       // duplicate
		subjects.Filter{},                           // zero
	)
	fmt.Println(fs)
	// Output:
	// [orders.> users.A.> users.B.>]
}

func ExampleEscape() {
	fmt.Println(subjects.Escape("ann@example.com"))
	fmt.Println(subjects.Escape("a.b c"))
	fmt.Println(subjects.Escape("plain-id_42"))
	fmt.Println(subjects.Escape(""))
	// Output:
	// ann=40example=2Ecom
	// a=2Eb=20c
	// plain-id_42
	// =
}

func ExampleUnescape() {
	raw, err := subjects.Unescape("ann=40example=2Ecom")
	fmt.Println(raw, err)

	// Only what Escape produces is accepted: lower-case hex is not.
	_, err = subjects.Unescape("ann=40example=2ecom")
	fmt.Println(errors.Is(err, subjects.ErrInvalidEscape))
	// Output:
	// ann@example.com <nil>
	// true
}

func ExampleSubject_MarshalText() {
	type config struct {
		Subject subjects.Subject `json:"subject"`
		Filter  subjects.Filter  `json:"filter"`
	}
	var c config
	err := json.Unmarshal([]byte(`{"subject":"users.A.added","filter":"users.*.added"}`), &c)
	fmt.Println(c.Subject, c.Filter, err)

	err = json.Unmarshal([]byte(`{"subject":"users.*"}`), &c)
	fmt.Println(errors.Is(err, subjects.ErrInvalidSubject))
	// Output:
	// users.A.added users.*.added <nil>
	// true
}
