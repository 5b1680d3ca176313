package handlers

import (
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jetsource/jetsource/subjects"
)

// FuzzCommandFromMsg checks the decoding of bus messages: it never panics,
// what it accepts is a valid command, and a command's own headers decode to
// the same command.
func FuzzCommandFromMsg(f *testing.F) {
	f.Add("cmd.InsertUser", "c-1", "alice", "", `{"id":"u1"}`) // a plain command
	f.Add("cmd.X", "id with spaces %", "b\u00e9a", "conv", ``) // values needing percent-encoding
	f.Add("cmd.a.b", "", "", "", `{}`)                         // a name with a dot
	f.Add("other.X", "", "", "", ``)                           // outside the prefix
	f.Add("cmd.X", "%ZZ", "%FF", "%", `{bad`)                  // bad escapes and bad JSON
	f.Add("cmd.X", "\x00", "", "", `null`)                     // a control character
	f.Fuzz(func(t *testing.T, subject, id, actor, corr, data string) {
		h := nats.Header{}
		for k, v := range map[string]string{HeaderCommandID: id, HeaderActor: actor, HeaderCorrelationID: corr} {
			if v != "" {
				h.Set(k, v)
			}
		}
		c, err := CommandFromMsg("cmd", subject, h, []byte(data))
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid command %+v: %v", c, err)
		}
		back, err := CommandFromMsg("cmd", "cmd."+c.Name, c.Header(), c.Data)
		if err != nil {
			t.Fatalf("own headers of %+v: %v", c, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip: %+v became %+v", c, back)
		}
	})
}

// FuzzBoundary checks that the filters of a condition cover the decision's
// filters and fit the number of events.
func FuzzBoundary(f *testing.F) {
	f.Add("users.A.>", "companies.c.usernames.homer.>", "groups.*.members.A", 1) // three filters, one event
	f.Add("users.A", "users.A.>", "users.*", 1)                                  // a literal inside a wildcard
	f.Add("a.b.c", "a.b.d", "a.x.>", 0)                                          // a common prefix
	f.Add(">", "a", "b", 2)                                                      // everything
	f.Fuzz(func(t *testing.T, a, b, c string, events int) {
		if events < 0 || events > 3 {
			return
		}
		var fs []subjects.Filter
		for _, s := range []string{a, b, c} {
			if flt, err := subjects.ParseFilter(s); err == nil {
				fs = append(fs, flt)
			}
		}
		got := boundary(fs, events)
		if len(got) > events+1 {
			t.Fatalf("boundary(%v, %d) = %v: more conditions than fit", fs, events, got)
		}
		for _, want := range fs {
			covered := false
			for _, g := range got {
				covered = covered || g.Covers(want)
			}
			if !covered {
				t.Fatalf("boundary(%v, %d) = %v does not cover %v", fs, events, got, want)
			}
		}
	})
}
