package jetsource_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

func TestTypeFromSubject(t *testing.T) {
	tests := []struct {
		subject, want string
	}{
		{"users.A.added", "users.added"},
		{"users.added", "users.added"},
		{"orders.eu.42.line.7.placed", "orders.placed"},
		{"heartbeat", "heartbeat"},
		{"utilisateurs.Zoë.ajouté", "utilisateurs.ajouté"},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			if got := jetsource.TypeFromSubject(subjects.MustParse(tt.subject)); got != tt.want {
				t.Errorf("TypeFromSubject(%s) = %q, want %q", tt.subject, got, tt.want)
			}
		})
	}
	if got := jetsource.TypeFromSubject(subjects.Subject{}); got != "" {
		t.Errorf("TypeFromSubject(zero) = %q, want \"\"", got)
	}
}

func TestEventAggregateAndName(t *testing.T) {
	e := jetsource.Event{Subject: subjects.MustParse("users.A.added")}
	if got := e.Aggregate().String(); got != "users.A" {
		t.Errorf("Aggregate() = %q, want users.A", got)
	}
	if got := e.Name(); got != "added" {
		t.Errorf("Name() = %q, want added", got)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := jetsource.NewID()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("NewID() = %q, want 32 lower-case hex digits", id)
		}
		if seen[id] {
			t.Fatalf("NewID() returned %q twice", id)
		}
		seen[id] = true
	}
}

func TestClone(t *testing.T) {
	e := jetsource.Event{Data: []byte("abc"), Extensions: map[string]string{"k": "v"}}
	c := e.Clone()
	c.Data[0] = 'X'
	c.Extensions["k"] = "changed"
	c.Extensions["new"] = "x"
	if string(e.Data) != "abc" || len(e.Extensions) != 1 || e.Extensions["k"] != "v" {
		t.Errorf("changing the clone changed the original: %q %v", e.Data, e.Extensions)
	}
	if z := (jetsource.Event{}).Clone(); z.Data != nil || z.Extensions != nil {
		t.Errorf("Clone of the zero event = %+v, want nil data and extensions", z)
	}
}

func TestPrepare(t *testing.T) {
	now := fixtureTime
	users := subjects.MustParse("users.A.added")
	ann := []byte(`{"name":"Ann"}`)
	tests := []struct {
		name          string
		in            jetsource.Event
		defaultSource string
		want          jetsource.Event // ID left empty: want a generated id
		err           error
	}{
		{
			name:          "OK/defaults",
			in:            jetsource.Event{Subject: users, Data: ann},
			defaultSource: "/users-service",
			want: jetsource.Event{
				Source: "/users-service", Type: "users.added", Subject: users, Time: now,
				DataContentType: "application/json", Data: ann,
			},
		},
		{
			name: "OK/no default source",
			in:   jetsource.Event{Subject: users},
			want: jetsource.Event{Source: jetsource.DefaultSource, Type: "users.added", Subject: users, Time: now},
		},
		{
			name: "OK/attributes kept",
			in: jetsource.Event{
				ID: "evt-1", Source: "/mine", Type: "com.example.added", Subject: users,
				Time: now.Add(-time.Hour), DataContentType: "text/plain", Data: []byte("Ann"),
				Actor: "ann", SchemaRevision: 2, Extensions: map[string]string{"tenant": "acme"},
			},
			defaultSource: "/users-service",
			want: jetsource.Event{
				ID: "evt-1", Source: "/mine", Type: "com.example.added", Subject: users,
				Time: now.Add(-time.Hour), DataContentType: "text/plain", Data: []byte("Ann"),
				Actor: "ann", SchemaRevision: 2, Extensions: map[string]string{"tenant": "acme"},
			},
		},
		{
			name: "OK/time in UTC",
			in:   jetsource.Event{ID: "evt-1", Subject: users, Time: now.In(time.FixedZone("CET", 3600))},
			want: jetsource.Event{ID: "evt-1", Source: jetsource.DefaultSource, Type: "users.added", Subject: users, Time: now},
		},
		{
			name: "OK/empty data, no content type",
			in:   jetsource.Event{ID: "evt-1", Subject: users, Data: []byte{}},
			want: jetsource.Event{ID: "evt-1", Source: jetsource.DefaultSource, Type: "users.added", Subject: users, Time: now, Data: []byte{}},
		},
		{
			name: "ErrInvalidSubject/no subject",
			in:   jetsource.Event{Data: ann},
			err:  jetsource.ErrInvalidSubject,
		},
		{
			name: "ErrInvalidSubject/one token",
			in:   jetsource.Event{Subject: subjects.MustParse("users"), Data: ann},
			err:  jetsource.ErrInvalidSubject,
		},
		{
			name: "ErrInvalidData/not JSON under the default content type",
			in:   jetsource.Event{Subject: users, Data: []byte("Ann")},
			err:  jetsource.ErrInvalidData,
		},
		{
			name: "ErrInvalidEvent/bad extension name",
			in:   jetsource.Event{Subject: users, Extensions: map[string]string{"Tenant": "acme"}},
			err:  jetsource.ErrInvalidEvent,
		},
		{
			name: "ErrInvalidEvent/control character",
			in:   jetsource.Event{Subject: users, Actor: "ann\n"},
			err:  jetsource.ErrInvalidEvent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in.Clone()
			got, err := jetsource.Prepare(in, tt.defaultSource, now)
			if d := eventDiff(in, tt.in); d != "" || in.Time.Location() != tt.in.Time.Location() {
				t.Errorf("Prepare modified its argument:\n%s", d)
			}
			if tt.err != nil {
				checkSentinel(t, err, tt.err)
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			want := tt.want
			if want.ID == "" {
				if len(got.ID) != 32 {
					t.Errorf("generated id %q, want 32 hex digits", got.ID)
				}
				want.ID = got.ID
			}
			if d := eventDiff(got, want); d != "" {
				t.Errorf("Prepare:\n%s", d)
			}
			if got.Time.Location() != time.UTC {
				t.Errorf("Time %v is not in UTC", got.Time)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("prepared event: Validate: %v", err)
			}
		})
	}
}

// validEvent returns a valid event with every attribute set.
func validEvent() jetsource.Event {
	return jetsource.Event{
		ID: "evt-1", Source: "https://example.com/users", Type: "users.added",
		Subject: subjects.MustParse("users.A.added"), Time: fixtureTime,
		DataContentType: "application/json", DataSchema: "https://example.com/schemas/added.json",
		Data:  []byte(`{"name":"Ann"}`),
		Actor: "ann", ClientIP: "192.0.2.1", CorrelationID: "c-1", CausationID: "cmd-1",
		SchemaRevision: 1, TransactionID: "tx-1",
		Extensions: map[string]string{"tenant": "acme"},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(e *jetsource.Event)
		err    error // nil: valid
	}{
		{name: "OK/all attributes", change: func(e *jetsource.Event) {}},
		{name: "OK/required attributes only", change: func(e *jetsource.Event) {
			*e = jetsource.Event{ID: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject}
		}},
		{name: "OK/non-ASCII values", change: func(e *jetsource.Event) {
			e.Actor, e.Extensions["tenant"] = `Zoë "Z" 100%`, "Müller & Söhne 😀"
		}},
		{name: "OK/C1 control characters", change: func(e *jetsource.Event) { e.Actor = "\u0085" }},
		{name: "OK/id of 256 bytes", change: func(e *jetsource.Event) { e.ID = strings.Repeat("x", 256) }},
		{name: "OK/extension name of 20 characters", change: func(e *jetsource.Event) {
			e.Extensions = map[string]string{"abcdefghij0123456789": "v"}
		}},
		{name: "OK/empty data under JSON", change: func(e *jetsource.Event) { e.Data = nil }},
		{name: "OK/JSON with parameters", change: func(e *jetsource.Event) { e.DataContentType = "application/json; charset=utf-8" }},
		{name: "OK/other data under text/plain", change: func(e *jetsource.Event) {
			e.DataContentType, e.Data = "text/plain", []byte("not JSON")
		}},
		{name: "OK/binary data", change: func(e *jetsource.Event) {
			e.DataContentType, e.Data = "application/octet-stream", []byte{0, 0xff}
		}},
		{name: "OK/data without content type", change: func(e *jetsource.Event) {
			e.DataContentType, e.Data = "", []byte("not JSON")
		}},

		{name: "ErrInvalidSubject/no subject", change: func(e *jetsource.Event) { e.Subject = subjects.Subject{} }, err: jetsource.ErrInvalidSubject},

		{name: "ErrInvalidEvent/no id", change: func(e *jetsource.Event) { e.ID = "" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/no source", change: func(e *jetsource.Event) { e.Source = "" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/no type", change: func(e *jetsource.Event) { e.Type = "" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/negative schema revision", change: func(e *jetsource.Event) { e.SchemaRevision = -1 }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/id longer than 256 bytes", change: func(e *jetsource.Event) { e.ID = strings.Repeat("x", 257) }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/newline in id", change: func(e *jetsource.Event) { e.ID = "evt\n1" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/NUL in source", change: func(e *jetsource.Event) { e.Source = "/a\x00" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/tab in type", change: func(e *jetsource.Event) { e.Type = "users\tadded" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/space around type", change: func(e *jetsource.Event) { e.Type = " users.added" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/space after id", change: func(e *jetsource.Event) { e.ID = "evt-1 " }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/space around content type", change: func(e *jetsource.Event) { e.DataContentType = " application/json" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/control character in dataschema", change: func(e *jetsource.Event) { e.DataSchema = "https://x/\r" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/control character in content type", change: func(e *jetsource.Event) { e.DataContentType = "text/plain\x01" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/DEL in actor", change: func(e *jetsource.Event) { e.Actor = "ann\x7f" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/control character in clientip", change: func(e *jetsource.Event) { e.ClientIP = "\x1b" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/control character in correlationid", change: func(e *jetsource.Event) { e.CorrelationID = "\x1f" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/control character in causationid", change: func(e *jetsource.Event) { e.CausationID = "\x00" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/control character in transactionid", change: func(e *jetsource.Event) { e.TransactionID = "\n" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/control character in extension", change: func(e *jetsource.Event) { e.Extensions["tenant"] = "a\nb" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/empty extension name", change: func(e *jetsource.Event) { e.Extensions[""] = "v" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/upper-case extension name", change: func(e *jetsource.Event) { e.Extensions["Tenant"] = "v" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/dash in extension name", change: func(e *jetsource.Event) { e.Extensions["trace-id"] = "v" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/non-ASCII extension name", change: func(e *jetsource.Event) { e.Extensions["ünï"] = "v" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/extension name of 21 characters", change: func(e *jetsource.Event) { e.Extensions["abcdefghij0123456789x"] = "v" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/extension named id", change: func(e *jetsource.Event) { e.Extensions["id"] = "v" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/extension named subject", change: func(e *jetsource.Event) { e.Extensions["subject"] = "v" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/extension named data", change: func(e *jetsource.Event) { e.Extensions["data"] = "v" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/extension named actor", change: func(e *jetsource.Event) { e.Extensions["actor"] = "v" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/extension named sequence", change: func(e *jetsource.Event) { e.Extensions["sequence"] = "7" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/extension named schemarevision", change: func(e *jetsource.Event) { e.Extensions["schemarevision"] = "7" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/content type without subtype", change: func(e *jetsource.Event) { e.DataContentType = "application/" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/content type with a bad parameter", change: func(e *jetsource.Event) { e.DataContentType = "application/json; charset" }, err: jetsource.ErrInvalidEvent},

		{name: "ErrInvalidData/not JSON under application/json", change: func(e *jetsource.Event) { e.Data = []byte("Ann") }, err: jetsource.ErrInvalidData},
		{name: "ErrInvalidData/truncated JSON", change: func(e *jetsource.Event) { e.Data = []byte(`{"name":`) }, err: jetsource.ErrInvalidData},
		{name: "ErrInvalidData/not JSON under text/json", change: func(e *jetsource.Event) {
			e.DataContentType, e.Data = "text/json", []byte("Ann")
		}, err: jetsource.ErrInvalidData},
		{name: "ErrInvalidData/not JSON under a +json type", change: func(e *jetsource.Event) {
			e.DataContentType, e.Data = "application/vnd.users+json; charset=utf-8", []byte("Ann")
		}, err: jetsource.ErrInvalidData},
		{name: "ErrInvalidData/not JSON under upper-case JSON type", change: func(e *jetsource.Event) {
			e.DataContentType, e.Data = "Application/JSON", []byte("Ann")
		}, err: jetsource.ErrInvalidData},

		{name: "ErrInvalidEvent/invalid UTF-8 in id", change: func(e *jetsource.Event) { e.ID = "evt\xff" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/invalid UTF-8 in extension", change: func(e *jetsource.Event) { e.Extensions["tenant"] = "\xc3" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/schema revision above int32", change: func(e *jetsource.Event) { e.SchemaRevision = 1 << 31 }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/time after year 9999", change: func(e *jetsource.Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/blank id", change: func(e *jetsource.Event) { e.ID = " " }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/source not a URI reference", change: func(e *jetsource.Event) { e.Source = "/a%zz" }, err: jetsource.ErrInvalidEvent},
		{name: "ErrInvalidEvent/dataschema not an absolute URI", change: func(e *jetsource.Event) { e.DataSchema = "schemas/added.json" }, err: jetsource.ErrInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent()
			tt.change(&e)
			err := e.Validate()
			if tt.err == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				// A valid event is a valid CloudEvent.
				if _, err := e.ToCloudEvent(); err != nil {
					t.Errorf("Validate accepts the event, ToCloudEvent does not: %v", err)
				}
				return
			}
			checkSentinel(t, err, tt.err)
		})
	}
}

func TestToCloudEvent(t *testing.T) {
	t.Run("OK/attributes and extensions", func(t *testing.T) {
		e := validEvent()
		e.Sequence = 42
		ce, err := e.ToCloudEvent()
		if err != nil {
			t.Fatal(err)
		}
		got := []string{ce.SpecVersion(), ce.ID(), ce.Source(), ce.Type(), ce.Subject(), ce.DataContentType(), ce.DataSchema()}
		want := []string{"1.0", e.ID, e.Source, e.Type, "users.A.added", e.DataContentType, e.DataSchema}
		if !slices.Equal(got, want) {
			t.Errorf("attributes %q, want %q", got, want)
		}
		if !ce.Time().Equal(e.Time) {
			t.Errorf("time %v, want %v", ce.Time(), e.Time)
		}
		wantExt := map[string]any{
			"actor": "ann", "clientip": "192.0.2.1", "correlationid": "c-1", "causationid": "cmd-1",
			"transactionid": "tx-1", "schemarevision": int32(1), "sequence": "42", "tenant": "acme",
		}
		if !reflect.DeepEqual(ce.Extensions(), wantExt) {
			t.Errorf("extensions %#v, want %#v", ce.Extensions(), wantExt)
		}
		if ce.DataBase64 || string(ce.Data()) != string(e.Data) {
			t.Errorf("data %q (base64 %v), want %q as JSON", ce.Data(), ce.DataBase64, e.Data)
		}
	})
	t.Run("OK/unset attributes absent", func(t *testing.T) {
		e := jetsource.Event{ID: "evt-1", Source: "/s", Type: "t", Subject: subjects.MustParse("users.A.added")}
		ce, err := e.ToCloudEvent()
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(ce)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"specversion":"1.0","id":"evt-1","source":"/s","type":"t","subject":"users.A.added"}`
		if string(b) != want {
			t.Errorf("json %s, want %s", b, want)
		}
	})
	t.Run("OK/binary data as base64", func(t *testing.T) {
		e := validEvent()
		e.DataContentType, e.Data = "image/png", []byte{0x89, 'P', 'N', 'G'}
		ce, err := e.ToCloudEvent()
		if err != nil {
			t.Fatal(err)
		}
		if !ce.DataBase64 || string(ce.Data()) != string(e.Data) {
			t.Errorf("data %q (base64 %v), want %q as base64", ce.Data(), ce.DataBase64, e.Data)
		}
	})
	t.Run("ErrInvalidEvent/rejected by the SDK", func(t *testing.T) {
		e := validEvent()
		e.DataSchema = "schemas/added.json"
		_, err := e.ToCloudEvent()
		checkSentinel(t, err, jetsource.ErrInvalidEvent)
	})
}

func TestFromCloudEvent(t *testing.T) {
	tests := []struct {
		name string
		json string
		want jetsource.Event
		err  error
	}{
		{
			name: "OK/extensions as JSON types",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"users.A.added",` +
				`"schemarevision":3,"sequence":42,"priority":"high","retries":2,"urgent":true}`,
			want: jetsource.Event{
				ID: "1", Source: "/s", Type: "t", Subject: subjects.MustParse("users.A.added"),
				SchemaRevision: 3, Sequence: 42,
				Extensions: map[string]string{"priority": "high", "retries": "2", "urgent": "true"},
			},
		},
		{
			name: "OK/numbers as strings",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"users.A.added","schemarevision":"3","sequence":"42"}`,
			want: jetsource.Event{ID: "1", Source: "/s", Type: "t", Subject: subjects.MustParse("users.A.added"), SchemaRevision: 3, Sequence: 42},
		},
		{
			name: "OK/data_base64",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"files.F.put","datacontenttype":"application/octet-stream","data_base64":"AP8="}`,
			want: jetsource.Event{
				ID: "1", Source: "/s", Type: "t", Subject: subjects.MustParse("files.F.put"),
				DataContentType: "application/octet-stream", Data: []byte{0, 0xff},
			},
		},
		{
			name: "ErrInvalidSubject/no subject",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t"}`,
			err:  jetsource.ErrInvalidSubject,
		},
		{
			name: "ErrInvalidSubject/wildcard subject",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"users.*.added"}`,
			err:  jetsource.ErrInvalidSubject,
		},
		{
			name: "ErrInvalidSubject/subject with a space",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"users.Ann Smith.added"}`,
			err:  jetsource.ErrInvalidSubject,
		},
		{
			name: "ErrInvalidEvent/no id",
			json: `{"specversion":"1.0","source":"/s","type":"t","subject":"users.A.added"}`,
			err:  jetsource.ErrInvalidEvent,
		},
		{
			name: "ErrInvalidEvent/sequence not a number",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"users.A.added","sequence":"x"}`,
			err:  jetsource.ErrInvalidEvent,
		},
		{
			name: "ErrInvalidEvent/negative sequence",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"users.A.added","sequence":-1}`,
			err:  jetsource.ErrInvalidEvent,
		},
		{
			name: "ErrInvalidEvent/negative schemarevision",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"users.A.added","schemarevision":-1}`,
			err:  jetsource.ErrInvalidEvent,
		},
		{
			name: "ErrInvalidEvent/schemarevision not a number",
			json: `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"users.A.added","schemarevision":"three"}`,
			err:  jetsource.ErrInvalidEvent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ce cloudevents.Event
			if err := json.Unmarshal([]byte(tt.json), &ce); err != nil {
				t.Fatalf("json.Unmarshal: %v", err)
			}
			got, err := jetsource.FromCloudEvent(ce)
			if tt.err != nil {
				checkSentinel(t, err, tt.err)
				return
			}
			if err != nil {
				t.Fatalf("FromCloudEvent: %v", err)
			}
			if d := eventDiff(got, tt.want); d != "" {
				t.Errorf("FromCloudEvent:\n%s", d)
			}
		})
	}
}

func TestConflictError(t *testing.T) {
	cause := errors.New("nats: wrong last sequence: 7")
	tests := []struct {
		name string
		err  *jetsource.ConflictError
		msg  string
	}{
		{
			name: "current known",
			err:  &jetsource.ConflictError{Filter: "users.A.>", Expected: 3, Current: 7, CurrentKnown: true},
			msg:  "jetsource: concurrency conflict on users.A.>: expected last sequence 3, current 7",
		},
		{
			name: "current unknown",
			err:  &jetsource.ConflictError{Filter: "users.A.>", Expected: 0},
			msg:  "jetsource: concurrency conflict on users.A.>: expected last sequence 0",
		},
		{
			name: "current known as zero",
			err:  &jetsource.ConflictError{Filter: "users.B.>", Expected: 2, CurrentKnown: true},
			msg:  "jetsource: concurrency conflict on users.B.>: expected last sequence 2, current 0",
		},
		{
			name: "with cause",
			err:  &jetsource.ConflictError{Filter: "users.A.>", Expected: 3, Err: cause},
			msg:  "jetsource: concurrency conflict on users.A.>: expected last sequence 3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.msg {
				t.Errorf("Error() = %q, want %q", got, tt.msg)
			}
			wrapped := fmt.Errorf("append users.A.renamed: %w", tt.err)
			if !errors.Is(wrapped, jetsource.ErrConflict) {
				t.Error("errors.Is(err, ErrConflict) = false")
			}
			if got, want := errors.Is(wrapped, cause), tt.err.Err != nil; got != want {
				t.Errorf("errors.Is(err, cause) = %v, want %v", got, want)
			}
			for _, other := range append(sentinels, jetsource.ErrNotFound, jetsource.ErrUnavailable) {
				if errors.Is(wrapped, other) {
					t.Errorf("errors.Is(err, %v) = true", other)
				}
			}
			var ce *jetsource.ConflictError
			if !errors.As(wrapped, &ce) {
				t.Fatal("errors.As(err, *ConflictError) = false")
			}
			if ce != tt.err {
				t.Errorf("errors.As gave %+v, want %+v", ce, tt.err)
			}
		})
	}
	if errors.Is(jetsource.ErrConflict, &jetsource.ConflictError{}) {
		t.Error("ErrConflict matches a *ConflictError")
	}
}
