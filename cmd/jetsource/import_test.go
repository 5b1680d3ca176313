package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// importServer starts an embedded server whose stream EVENTS captures
// users.> and groups.>, and returns the --server flag for it. edit, if
// given, changes the stream's configuration first.
func importServer(t *testing.T, edit ...func(*jetstore.StreamConfig)) string {
	t.Helper()
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>", "groups.>"}}
	for _, f := range edit {
		f(&cfg)
	}
	if _, err := jetstore.Provision(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	return "--server=" + srv.ClientURL()
}

// importFixture is the path of a file in testdata/import.
func importFixture(name string) string { return filepath.Join("..", "..", "testdata", "import", name) }

// importWriteFile writes body to a new file in a temporary directory.
func importWriteFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// importExported returns "events -o json" of the server, one line per event.
func importExported(t *testing.T, srv string, filters ...string) []string {
	t.Helper()
	code, out, errOut := run(t, context.Background(), "", append(append([]string{"events", "-o", "json"}, filters...), srv)...)
	if code != 0 {
		t.Fatalf("events: code %d: %s", code, errOut)
	}
	out = strings.TrimSpace(out)
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// importJSON runs an import with --output json and decodes its summary.
func importJSON(t *testing.T, stdin string, args ...string) (int, importSummary, string) {
	t.Helper()
	code, out, errOut := run(t, context.Background(), stdin, append([]string{"import", "-o", "json"}, args...)...)
	var s importSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("summary %q is not JSON (code %d, stderr %q): %v", out, code, errOut, err)
	}
	return code, s, errOut
}

// importByID indexes exported events by id, without their sequence.
func importByID(t *testing.T, lines []string) map[string]map[string]any {
	t.Helper()
	m := map[string]map[string]any{}
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		delete(v, "sequence")
		m[v["id"].(string)] = v
	}
	return m
}

func TestImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	a, b := importServer(t), importServer(t)
	// Fill a with every kind of event: imported lines, a transaction, a
	// plain append.
	if code, s, errOut := importJSON(t, "", importFixture("good.ndjson"), a); code != 0 || s.Imported != 5 || s.Lines != 6 {
		t.Fatalf("import good.ndjson: code %d, %+v, %s", code, s, errOut)
	}
	if code, _, errOut := run(t, ctx, "", "append", "--batch", importFixture("crlf.ndjson"), a); code != 0 {
		t.Fatalf("append --batch: code %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, ctx, "", "append", "users.A.left", `{"why":"moved"}`, "--actor", "bob", a); code != 0 {
		t.Fatalf("append: code %d: %s", code, errOut)
	}
	src := importExported(t, a)
	if len(src) != 8 {
		t.Fatalf("want 8 events on a, got %d", len(src))
	}
	file := importWriteFile(t, "export.ndjson", strings.Join(src, "\n")+"\n")

	t.Run("ImportsEveryAttribute", func(t *testing.T) {
		code, s, errOut := importJSON(t, "", file, b)
		if code != 0 || s.Imported != 8 || s.Duplicates != 0 || s.BadLines != 0 || !s.Written {
			t.Fatalf("code %d, %+v, %s", code, s, errOut)
		}
		got, want := importByID(t, importExported(t, b)), importByID(t, src)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("events differ after the round trip:\ngot  %v\nwant %v", got, want)
		}
		// Within an aggregate the file's order is kept.
		var names []string
		for _, l := range importExported(t, b, "users.A.>") {
			var v struct{ Subject string }
			json.Unmarshal([]byte(l), &v)
			names = append(names, v.Subject)
		}
		if want := []string{"users.A.added", "users.A.renamed", "users.A.left"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("users.A order: got %v, want %v", names, want)
		}
	})
	t.Run("ReimportIsIdempotent", func(t *testing.T) {
		for _, srv := range []string{a, b} {
			code, s, errOut := importJSON(t, "", file, srv)
			if code != 0 || s.Imported != 0 || s.Duplicates != 8 || s.Written {
				t.Fatalf("re-import: code %d, %+v, %s", code, s, errOut)
			}
		}
		if n := len(importExported(t, b)); n != 8 {
			t.Fatalf("re-import stored events again: %d", n)
		}
	})
	t.Run("TableSummary", func(t *testing.T) {
		code, out, errOut := run(t, ctx, "", "import", file, "--no-progress", b)
		if code != 0 || !strings.Contains(out, "duplicates  8") || !strings.Contains(out, "imported    0") || !strings.Contains(out, "events/s") {
			t.Fatalf("code %d, out %q, err %q", code, out, errOut)
		}
		if errOut != "" {
			t.Fatalf("--no-progress still wrote %q", errOut)
		}
	})
}

// badLines are the bad lines of testdata/import/bad.ndjson with a word of
// their error.
var badLines = map[int64]string{
	2:  "not JSON",
	4:  "no subject",
	5:  "wildcard",
	6:  "does not capture orders.O.placed",
	7:  "not valid JSON",
	8:  "not a JSON object",
	9:  "specversion",
	11: "not JSON",
}

func checkBadLines(t *testing.T, errOut string) {
	t.Helper()
	for line, msg := range badLines {
		prefix := fmt.Sprintf("line %d: ", line)
		i := strings.Index(errOut, prefix)
		if i < 0 {
			t.Errorf("line %d is not reported in %q", line, errOut)
			continue
		}
		if rest, _, _ := strings.Cut(errOut[i:], "\n"); !strings.Contains(rest, msg) {
			t.Errorf("line %d: got %q, want it to say %q", line, rest, msg)
		}
	}
	for _, good := range []int{1, 3, 10} {
		if strings.Contains(errOut, fmt.Sprintf("line %d: ", good)) {
			t.Errorf("good line %d reported as bad in %q", good, errOut)
		}
	}
}

func TestImportBadLines(t *testing.T) {
	srv := importServer(t)
	t.Run("AbortWritesNothing", func(t *testing.T) {
		// Line 6 names a subject the stream does not capture: a usage error.
		code, s, errOut := importJSON(t, "", importFixture("bad.ndjson"), srv)
		if code != exitUsage || s.BadLines != 8 || s.Imported != 0 || s.Written || s.OnError != "abort" {
			t.Fatalf("code %d, %+v", code, s)
		}
		checkBadLines(t, errOut)
		if !strings.Contains(errOut, "nothing written") {
			t.Fatalf("stderr does not say nothing was written: %q", errOut)
		}
		if n := len(importExported(t, srv)); n != 0 {
			t.Fatalf("abort mode wrote %d events", n)
		}
	})
	t.Run("SkipWritesTheGoodLines", func(t *testing.T) {
		code, s, errOut := importJSON(t, "", importFixture("bad.ndjson"), "--on-error=skip", srv)
		if code != exitUsage || s.BadLines != 8 || s.Imported != 3 || !s.Written || s.Lines != 11 {
			t.Fatalf("code %d, %+v, %s", code, s, errOut)
		}
		checkBadLines(t, errOut)
		var lines []int64
		for _, e := range s.Errors {
			lines = append(lines, e.Line)
		}
		if want := []int64{2, 4, 5, 6, 7, 8, 9, 11}; !reflect.DeepEqual(lines, want) {
			t.Fatalf("summary errors on lines %v, want %v", lines, want)
		}
		ids := importByID(t, importExported(t, srv))
		if len(ids) != 3 || ids["bad-1"] == nil || ids["bad-3"] == nil || ids["bad-10"] == nil {
			t.Fatalf("stored %v, want bad-1, bad-3 and bad-10", ids)
		}
	})
	t.Run("BadFlag", func(t *testing.T) {
		code, _, errOut := run(t, context.Background(), "", "import", importFixture("good.ndjson"), "--on-error=ignore", srv)
		if code != exitUsage || !strings.Contains(errOut, "--on-error") {
			t.Fatalf("code %d, %q", code, errOut)
		}
	})
	t.Run("MissingFile", func(t *testing.T) {
		code, _, errOut := run(t, context.Background(), "", "import", importFixture("nope.ndjson"), srv)
		if code != exitError || !strings.Contains(errOut, "no such file") {
			t.Fatalf("code %d, %q", code, errOut)
		}
	})
}

func TestImportTooLarge(t *testing.T) {
	srv := importServer(t, func(c *jetstore.StreamConfig) { c.MaxMsgSize = 4096 })
	big := `{"subject":"users.Z.added","id":"big","data":"` + strings.Repeat("x", 5000) + `"}`
	body := `{"subject":"users.Y.added","id":"small-1","data":{}}` + "\n" + big + "\n" + `{"subject":"users.Y.renamed","id":"small-2","data":{}}` + "\n"
	file := importWriteFile(t, "big.ndjson", body)
	code, s, errOut := importJSON(t, "", file, srv)
	if code != exitError || s.BadLines != 1 || s.Written || !strings.Contains(errOut, "line 2: ") || !strings.Contains(errOut, "payload too large") {
		t.Fatalf("abort: code %d, %+v, %q", code, s, errOut)
	}
	code, s, errOut = importJSON(t, "", file, "--on-error", "skip", srv)
	if code != exitError || s.BadLines != 1 || s.Imported != 2 || s.Failed != 0 {
		t.Fatalf("skip: code %d, %+v, %q", code, s, errOut)
	}
}

func TestImportStdin(t *testing.T) {
	srv := importServer(t)
	body, err := os.ReadFile(importFixture("good.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	for i, mode := range []string{"abort", "skip"} {
		// Same events under fresh ids, so that each mode writes.
		in := strings.ReplaceAll(string(body), `"imp-`, fmt.Sprintf(`"stdin%d-`, i))
		code, s, errOut := importJSON(t, in, "-", "--on-error="+mode, srv)
		if code != 0 || s.Imported != 5 || s.File != "-" {
			t.Fatalf("%s: code %d, %+v, %s", mode, code, s, errOut)
		}
	}
	code, s, errOut := importJSON(t, "{bad\n", "-", srv)
	if code != exitError || s.BadLines != 1 || !strings.Contains(errOut, "line 1: ") {
		t.Fatalf("bad stdin: code %d, %+v, %q", code, s, errOut)
	}
}

func TestImportProgressLines(t *testing.T) {
	srv := importServer(t)
	code, _, errOut := run(t, context.Background(), "", "import", importFixture("good.ndjson"), srv)
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	// Not a terminal: plain lines, no bar; the final one of each pass.
	for _, want := range []string{"validate: ", "import: ", "(100%)", "done in"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("progress %q lacks %q", errOut, want)
		}
	}
	if strings.Contains(errOut, "\r") || strings.Contains(errOut, "█") {
		t.Errorf("progress drew a bar into a buffer: %q", errOut)
	}
}

// TestImportFlushes imports more events than one flush collects, across
// many aggregates, and checks every event is stored once and in file
// order within its aggregate.
func TestImportFlushes(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 3000 events twice")
	}
	srv := importServer(t)
	var b strings.Builder
	const n, aggs = 3000, 40
	for i := range n {
		fmt.Fprintf(&b, `{"subject":"users.U%d.changed","id":"flush-%d","data":{"n":%d}}`+"\n", i%aggs, i, i)
	}
	file := importWriteFile(t, "many.ndjson", b.String())
	code, s, errOut := importJSON(t, "", file, "--on-error=skip", "--flush-every=250", srv)
	if code != 0 || s.Imported != n {
		t.Fatalf("code %d, %+v, %s", code, s, errOut)
	}
	last := map[string]float64{}
	for _, l := range importExported(t, srv) {
		var v struct {
			Subject string
			Data    struct{ N float64 }
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		if p, ok := last[v.Subject]; ok && v.Data.N <= p {
			t.Fatalf("%s: event %v stored after %v", v.Subject, v.Data.N, p)
		}
		last[v.Subject] = v.Data.N
	}
	if len(last) != aggs {
		t.Fatalf("got %d aggregates, want %d", len(last), aggs)
	}
	code, s, _ = importJSON(t, "", file, "--flush-every=1000", srv)
	if code != 0 || s.Duplicates != n || s.Imported != 0 {
		t.Fatalf("re-import: code %d, %+v", code, s)
	}
}

// TestImportStopsOnWriteError deletes the stream during an import: the
// import stops, names the first line not written and exits 1.
func TestImportStopsOnWriteError(t *testing.T) {
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range 200000 {
		fmt.Fprintf(&b, `{"subject":"users.W%d.changed","id":"w-%d"}`+"\n", i%100, i)
	}
	file := importWriteFile(t, "stop.ndjson", b.String())
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := run(t, ctx, "", "import", file, "--on-error=skip", "-o", "json", "--timeout=1s", "--server="+srv.ClientURL())
		done <- result{code, out, errOut}
	}()
	progressWaitFor(t, func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs > 0
	})
	if err := js.DeleteStream(ctx, "EVENTS"); err != nil {
		t.Fatal(err)
	}
	res := <-done
	var s importSummary
	if err := json.Unmarshal([]byte(res.out), &s); err != nil {
		t.Fatalf("summary %q: %v", res.out, err)
	}
	if res.code != exitError || s.Failed == 0 || s.Imported+s.Failed >= 200000 || len(s.Errors) != 1 || !strings.Contains(res.err, "not written") {
		t.Fatalf("code %d, %+v, stderr %q", res.code, s, res.err)
	}
}

func TestParseEventLine(t *testing.T) {
	ok := []struct {
		name string
		line string
		want jetsource.Event
	}{
		{"CloudEvent", `{"specversion":"1.0","id":"e1","source":"/crm","type":"users.added","subject":"users.A.added","time":"2025-01-02T03:04:05Z","datacontenttype":"application/json","data":{"a":1},"actor":"alice","clientip":"10.0.0.1","correlationid":"c","causationid":"k","transactionid":"tx","schemarevision":3,"tenant":"t1","sequence":"9"}`,
			jetsource.Event{ID: "e1", Source: "/crm", Type: "users.added", Subject: subjects.MustParse("users.A.added"), Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
				DataContentType: "application/json", Data: []byte(`{"a":1}`), Actor: "alice", ClientIP: "10.0.0.1", CorrelationID: "c", CausationID: "k", TransactionID: "tx", SchemaRevision: 3, Extensions: map[string]string{"tenant": "t1"}}},
		{"ShortForm", `{"subject":"users.A.added","data":{"a":1}}`, jetsource.Event{Subject: subjects.MustParse("users.A.added"), Data: []byte(`{"a":1}`)}},
		{"ShortFormKeepsWhatItNames", `{"subject":"users.A.added","id":"x","type":"t","actor":"al"}`, jetsource.Event{ID: "x", Type: "t", Subject: subjects.MustParse("users.A.added"), Actor: "al"}},
		{"Base64IsOctetStream", `{"specversion":"1.0","id":"b","source":"/s","type":"t","subject":"users.A.x","data_base64":"AAEC"}`,
			jetsource.Event{ID: "b", Source: "/s", Type: "t", Subject: subjects.MustParse("users.A.x"), DataContentType: "application/octet-stream", Data: []byte{0, 1, 2}}},
		{"TextData", `{"specversion":"1.0","id":"t","source":"/s","type":"t","subject":"users.A.x","datacontenttype":"text/plain","data":"hi\n"}`,
			jetsource.Event{ID: "t", Source: "/s", Type: "t", Subject: subjects.MustParse("users.A.x"), DataContentType: "text/plain", Data: []byte("hi\n")}},
		{"SurroundingSpace", " \t{\"subject\":\"users.A.added\"} ", jetsource.Event{Subject: subjects.MustParse("users.A.added")}},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseEventLine([]byte(c.line))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Time.Equal(c.want.Time) {
				t.Fatalf("time: got %v, want %v", got.Time, c.want.Time)
			}
			got.Time, c.want.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %#v\nwant %#v", got, c.want)
			}
		})
	}
	bad := []struct {
		name, line string
		want       error
		msg        string
	}{
		{"Empty", ``, jetsource.ErrInvalidEvent, "not a JSON object"},
		{"Array", `[1]`, jetsource.ErrInvalidEvent, "not a JSON object"},
		{"Truncated", `{"subject":"users.A.added"`, jetsource.ErrInvalidEvent, "not JSON"},
		{"Trailing", `{"subject":"users.A.added"} x`, jetsource.ErrInvalidEvent, "not JSON"},
		{"TwoObjects", `{"subject":"users.A.added"}{"subject":"users.A.added"}`, jetsource.ErrInvalidEvent, "not JSON"},
		{"NoSubject", `{"specversion":"1.0","id":"e","source":"/s","type":"t"}`, jetsource.ErrInvalidSubject, "no subject"},
		{"ShortNoSubject", `{"id":"e","data":{}}`, jetsource.ErrInvalidSubject, "no subject"},
		{"Wildcard", `{"subject":"users.*.added"}`, jetsource.ErrInvalidSubject, ""},
		{"NoID", `{"specversion":"1.0","source":"/s","type":"t","subject":"users.A.added"}`, jetsource.ErrInvalidEvent, "id"},
		{"OldSpec", `{"specversion":"0.3","id":"e","source":"/s","type":"t","subject":"users.A.added"}`, jetsource.ErrInvalidEvent, "specversion"},
		{"BadTime", `{"specversion":"1.0","id":"e","source":"/s","type":"t","subject":"users.A.added","time":"yesterday"}`, jetsource.ErrInvalidEvent, ""},
		{"BadBase64", `{"specversion":"1.0","id":"e","source":"/s","type":"t","subject":"users.A.added","data_base64":"!!"}`, jetsource.ErrInvalidEvent, ""},
		{"BadExtensionName", `{"specversion":"1.0","id":"e","source":"/s","type":"t","subject":"users.A.added","Bad-Name":"x"}`, jetsource.ErrInvalidEvent, ""},
		{"ObjectExtension", `{"subject":"users.A.added","tenant":{"a":1}}`, jetsource.ErrInvalidEvent, ""},
		{"NegativeRevision", `{"subject":"users.A.added","schemarevision":-1}`, jetsource.ErrInvalidEvent, "schema revision"},
		{"TextDataNotString", `{"subject":"users.A.added","datacontenttype":"text/plain","data":{"a":1}}`, jetsource.ErrInvalidEvent, ""},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseEventLine([]byte(c.line))
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v with %q", err, c.want, c.msg)
			}
		})
	}
}

func TestLineReader(t *testing.T) {
	in := "\xef\xbb\xbfone\r\n\n" + strings.Repeat("x", 20) + "\nthree\nlast"
	lr := newLineReader(strings.NewReader(in))
	lr.max = 10
	type line struct {
		text string
		num  int64
		err  bool
	}
	var got []line
	var total int64
	for {
		b, num, n, err := lr.next()
		total += n
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, errLineTooLong) {
			t.Fatal(err)
		}
		got = append(got, line{string(b), num, err != nil})
	}
	want := []line{{"one", 1, false}, {"", 2, false}, {"", 3, true}, {"three", 4, false}, {"last", 5, false}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if total != int64(len(in)) {
		t.Fatalf("counted %d bytes, the input has %d", total, len(in))
	}
}

// FuzzParseEventLine checks that the line parser never panics and that
// what it accepts survives the way back: printed as "events --output
// json" prints it, then parsed again, it is the same event.
func FuzzParseEventLine(f *testing.F) {
	// A full CloudEvent with every extension jetsource knows.
	f.Add([]byte(`{"specversion":"1.0","id":"e1","source":"/crm","type":"users.added","subject":"users.A.added","time":"2025-01-02T03:04:05.5Z","datacontenttype":"application/json","data":{"a":[1,2]},"actor":"alice","clientip":"::1","correlationid":"c","causationid":"k","transactionid":"tx","schemarevision":3,"tenant":"t1","sequence":"9"}`))
	// The short form.
	f.Add([]byte(`{"subject":"users.A.added","data":{"name":"Ann"}}`))
	// Binary data.
	f.Add([]byte(`{"specversion":"1.0","id":"b","source":"/s","type":"t","subject":"users.A.x","data_base64":"AAEC"}`))
	// Text data with escapes.
	f.Add([]byte(`{"specversion":"1.0","id":"t","source":"/s","type":"t","subject":"users.A.x","datacontenttype":"text/plain","data":"a\u0000\n\"b"}`))
	// Escaped subject token and a percent in an attribute.
	f.Add([]byte(`{"subject":"users.ann~40example~2Ecom.added","actor":"50%","data":null}`))
	// Attributes with surrounding spaces, which the SDK trims on output.
	f.Add([]byte(`{"xcybxaxaxxy":"","id":"2","source":"2","type":"0 ","subject":"110.0","datacontenttype":" 0000000","data":"000000000\b0"}`))
	// Broken inputs.
	f.Add([]byte(`{"specversion":"1.0","id":`))
	f.Add([]byte(`{"subject":"users.A.added"} {}`))
	f.Add([]byte(`{"specversion":1,"subject":"users.A.added"}`))
	f.Add([]byte(`{"subject":"users.A.added","schemarevision":1e10}`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := parseEventLine(line)
		if err != nil {
			if !errors.Is(err, jetsource.ErrInvalidEvent) && !errors.Is(err, jetsource.ErrInvalidSubject) && !errors.Is(err, jetsource.ErrInvalidData) {
				t.Fatalf("error %v matches no sentinel", err)
			}
			return
		}
		if e.Subject.IsZero() || e.Sequence != 0 {
			t.Fatalf("accepted event without subject or with a sequence: %+v", e)
		}
		p, err := jetsource.Prepare(e, jetsource.DefaultSource, time.Unix(0, 0))
		if err != nil {
			return // the store refuses it; the import reports the line
		}
		ce, err := p.ToCloudEvent()
		if err != nil {
			t.Fatalf("a prepared event does not print: %v (%+v)", err, p)
		}
		out, err := json.Marshal(ce)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := parseEventLine(out)
		if err != nil {
			t.Fatalf("printed %s does not parse: %v", out, err)
		}
		if !back.Time.Equal(p.Time) {
			t.Fatalf("time: got %v, want %v", back.Time, p.Time)
		}
		back.Time, p.Time = time.Time{}, time.Time{}
		if len(back.Data) == 0 && len(p.Data) == 0 {
			back.Data, p.Data = nil, nil
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip through %s:\ngot  %#v\nwant %#v", out, back, p)
		}
	})
}

func TestProgressPlainLines(t *testing.T) {
	buf := &syncWriter{w: &bytes.Buffer{}}
	p := newProgress(buf, 1000, "load", withProgressInterval(5*time.Millisecond))
	for range 10 {
		p.Add(50)
		p.Println("a message")
		time.Sleep(3 * time.Millisecond)
	}
	progressWaitFor(t, func() bool { return strings.Count(buf.String(), "load: ") >= 2 })
	p.Add(500)
	p.Finish()
	p.Finish()
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "load: 1.0 kB / 1.0 kB (100%), ") || !strings.Contains(last, "/s, done in") {
		t.Fatalf("last line %q", last)
	}
	if !strings.Contains(out, "ETA ") || !strings.Contains(out, "a message\n") {
		t.Fatalf("no ETA or message in %q", out)
	}
	if n := strings.Count(out, "done in"); n != 1 {
		t.Fatalf("%d final lines in %q", n, out)
	}
	if p.Count() != 1000 {
		t.Fatalf("count %d", p.Count())
	}
}

func TestProgressUnknownTotalAndItems(t *testing.T) {
	buf := &syncWriter{w: &bytes.Buffer{}}
	p := newProgress(buf, 0, "read", withProgressUnit("lines"))
	p.Add(42)
	p.Finish()
	if out := buf.String(); !strings.HasPrefix(out, "read: 42 lines, ") || strings.Contains(out, "%") || strings.Contains(out, "ETA") {
		t.Fatalf("got %q", out)
	}
	buf = &syncWriter{w: &bytes.Buffer{}}
	p = newProgress(buf, 10, "quiet", withProgressDisabled(true))
	p.Add(5)
	p.Println("shown")
	p.Finish()
	if out := buf.String(); out != "shown\n" {
		t.Fatalf("disabled progress wrote %q", out)
	}
}

func TestProgressBar(t *testing.T) {
	buf := &syncWriter{w: &bytes.Buffer{}}
	p := newProgress(buf, 100, "import", withProgressTTY(true))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			p.Add(10)
		}
	}()
	p.Println("line 3: bad")
	<-done
	p.Finish()
	out := buf.String()
	if !strings.Contains(out, "import") || !strings.Contains(out, "100%") || !strings.Contains(out, "line 3: bad\n") {
		t.Fatalf("bar output %q", out)
	}
}

// progressWaitFor polls cond until it holds or five seconds pass.
func progressWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkParseEventLine measures the parsing and checking of one line
// as the import does it, without a server.
func BenchmarkParseEventLine(b *testing.B) {
	line := []byte(`{"specversion":"1.0","id":"big-1","source":"/bench","type":"users.changed","subject":"users.U1.changed","time":"2025-01-01T00:00:00Z","datacontenttype":"application/json","data":{"n":1,"name":"user 1"}}`)
	check := &eventChecker{source: jetsource.DefaultSource, stream: "EVENTS", capture: []subjects.Filter{subjects.MustParseFilter("users.>")}, maxSize: 1 << 20}
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := parseEventLine(line)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := check.check(e, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// importShortWindow starts a server whose stream EVENTS (users.>,
// groups.>) has a 200ms duplicate window, and returns the --server flag
// and a store on it.
func importShortWindow(t *testing.T) (string, *jetstore.Store) {
	t.Helper()
	srv := embeddedtest.Run(t)
	nc := embeddedtest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "EVENTS", Subjects: []string{"users.>", "groups.>"}, Duplicates: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	st, err := jetstore.New(ctx, js, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	return "--server=" + srv.ClientURL(), st
}

// importWaitWindow waits until the duplicate window of everything stored
// so far has passed: an id stored now is stored again.
func importWaitWindow(t *testing.T, st *jetstore.Store) {
	t.Helper()
	ctx := context.Background()
	probe := jetsource.Event{ID: "probe-" + t.Name(), Subject: subjects.MustParse("groups.probe.checked")}
	if _, err := st.Append(ctx, probe); err != nil {
		t.Fatal(err)
	}
	progressWaitFor(t, func() bool {
		ack, err := st.Append(ctx, probe)
		if err != nil {
			t.Fatal(err)
		}
		return !ack.Duplicate
	})
}

// importUsers returns the stored events under users.>.
func importUsers(t *testing.T, srv string) []string { return importExported(t, srv, "users.>") }

// Issue 15, point 3: importing the same file again stores nothing new,
// also after the stream's duplicate window: lines without an id get ids
// derived from their content, two identical lines are two events, and
// events already stored are counted as duplicates. --dedup=false keeps
// the old behaviour.
func TestImportIdempotentByContent(t *testing.T) {
	srv, st := importShortWindow(t)
	body := `{"subject":"users.imp5.added","data":{"name":"Ann"}}
{"subject":"users.imp5.renamed","data":{"name":"Bo"}}
{"subject":"users.imp5.renamed","data":{"name":"Bo"}}
{"subject":"users.imp6.added","type":"added","time":"2024-01-02T03:04:05Z","data":{"name":"Cy"}}
{"specversion":"1.0","id":"with-id-1","source":"/t","type":"added","subject":"users.imp7.added","data":{}}
`
	file := importWriteFile(t, "seed.ndjson", body)
	code, s, errOut := importJSON(t, "", file, srv)
	if code != 0 || s.Imported != 5 || s.Duplicates != 0 || !s.Dedup {
		t.Fatalf("first import: code %d, %+v, %s", code, s, errOut)
	}
	first := importUsers(t, srv)
	if len(first) != 5 {
		t.Fatalf("first import stored %d events, want 5 (two identical lines are two events)", len(first))
	}
	byID := importByID(t, first)
	for id := range byID {
		if id != "with-id-1" && !strings.HasPrefix(id, "imp-") {
			t.Errorf("id %q: want a content id imp-...", id)
		}
	}
	importWaitWindow(t, st)

	code, s, errOut = importJSON(t, "", file, srv)
	if code != 0 || s.Imported != 0 || s.Duplicates != 5 {
		t.Fatalf("same file after the duplicate window: code %d, %+v, %s; want 0 imported, 5 duplicates", code, s, errOut)
	}
	if got := importUsers(t, srv); len(got) != 5 {
		t.Fatalf("same file after the duplicate window: %d events stored, want 5", len(got))
	}

	// A line added to the file is the only new event; the text summary
	// tells new from already stored.
	more := importWriteFile(t, "more.ndjson", body+`{"subject":"users.imp5.renamed","data":{"name":"Bo"}}`+"\n")
	code, out, errOut := run(t, context.Background(), "", "import", more, "--no-progress", srv)
	if code != 0 || !strings.Contains(out, "imported    1 (new)") || !strings.Contains(out, "duplicates  5 (already stored)") {
		t.Fatalf("file with one more line: code %d, %q, %s", code, out, errOut)
	}
	if got := importUsers(t, srv); len(got) != 6 {
		t.Fatalf("file with one more line: %d events stored, want 6", len(got))
	}

	// Without dedup, id-less lines are new every time, and so is an id
	// stored before the window.
	importWaitWindow(t, st)
	code, s, errOut = importJSON(t, "", file, "--dedup=false", srv)
	if code != 0 || s.Imported != 5 || s.Dedup {
		t.Fatalf("--dedup=false: code %d, %+v, %s; want 5 imported", code, s, errOut)
	}
}

// An id stored with other content is a reused id, also after the
// duplicate window: nothing is written, exit status 3.
func TestImportDedupReusedID(t *testing.T) {
	srv, st := importShortWindow(t)
	line := func(data string) string {
		return `{"specversion":"1.0","id":"reused-1","source":"/t","type":"added","subject":"users.r.added","data":` + data + "}\n"
	}
	if code, s, errOut := importJSON(t, "", importWriteFile(t, "a.ndjson", line(`{"v":1}`)), srv); code != 0 || s.Imported != 1 {
		t.Fatalf("first import: code %d, %+v, %s", code, s, errOut)
	}
	importWaitWindow(t, st)
	code, s, errOut := importJSON(t, "", importWriteFile(t, "b.ndjson", line(`{"v":2}`)), srv)
	if code != exitConflict || s.Failed != 1 || s.Imported != 0 || !strings.Contains(errOut, "data") {
		t.Fatalf("same id, other data: code %d, %+v, %s; want exit %d naming the data", code, s, errOut, exitConflict)
	}
	if got := importUsers(t, srv); len(got) != 1 {
		t.Fatalf("%d events stored, want 1", len(got))
	}
}

func TestContentID(t *testing.T) {
	parse := func(line string) jetsource.Event {
		t.Helper()
		e, err := parseEventLine([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	const a = `{"subject":"users.A.added","data":{"n":1}}`
	ids := func(lines ...string) []string {
		ords := newOrdinals()
		var out []string
		for _, l := range lines {
			out = append(out, contentID(parse(l), ords))
		}
		return out
	}
	first := ids(a, a, `{"subject":"users.B.added","data":{"n":1}}`, a)
	again := ids(a, a, `{"subject":"users.B.added","data":{"n":1}}`, a)
	if !reflect.DeepEqual(first, again) {
		t.Fatalf("the same lines gave %v, then %v", first, again)
	}
	seen := map[string]bool{}
	for _, id := range first {
		if seen[id] {
			t.Fatalf("ids %v: identical lines must get different ids", first)
		}
		seen[id] = true
		if len(id) != len("imp-")+32 || !strings.HasPrefix(id, "imp-") {
			t.Fatalf("id %q: want imp- and 32 hex digits", id)
		}
	}
	// The first occurrence of a content keeps its id whatever precedes it.
	if got := ids(`{"subject":"users.C.added"}`, a); got[1] != first[0] {
		t.Errorf("first occurrence after another line: %s, want %s", got[1], first[0])
	}
	// Every attribute the line gives counts; the type as derived equals
	// the type given.
	base := ids(a)[0]
	for _, tc := range []struct {
		name, line string
		same       bool
	}{
		{"TypeGivenAsDerived", `{"subject":"users.A.added","type":"users.added","data":{"n":1}}`, true},
		{"OtherData", `{"subject":"users.A.added","data":{"n":2}}`, false},
		{"OtherSubject", `{"subject":"users.Z.added","data":{"n":1}}`, false},
		{"OtherType", `{"subject":"users.A.added","type":"created","data":{"n":1}}`, false},
		{"Source", `{"subject":"users.A.added","source":"/crm","data":{"n":1}}`, false},
		{"Time", `{"subject":"users.A.added","time":"2024-01-01T00:00:00Z","data":{"n":1}}`, false},
		{"Extension", `{"subject":"users.A.added","actor":"ann","data":{"n":1}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(tc.line)[0]; (got == base) != tc.same {
				t.Errorf("%s: id %s, base %s; same %v", tc.line, got, base, tc.same)
			}
		})
	}
}
