package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/publisher"
	"github.com/jetsource/jetsource/subjects"
)

// maxLineBytes bounds one line of an NDJSON file. An event must also fit
// the server's maximum payload (1 MB by default); a longer line is a bad
// line, skipped without being held in memory.
const maxLineBytes = 64 << 20

// maxReportedErrors bounds the bad lines reported one by one (on standard
// error and in the JSON summary); all of them are counted.
const maxReportedErrors = 100

// importFlushEvery is how many appends the import makes between two
// publisher flushes, which collect their results and bound the memory the
// import holds however long the file.
const importFlushEvery = 50000

// errLineTooLong is the error of a line longer than the line reader's
// maximum.
var errLineTooLong = fmt.Errorf("%w: line too long", jetsource.ErrInvalidEvent)

// lineReader reads an NDJSON stream one line at a time, never holding
// more than one line.
type lineReader struct {
	r    *bufio.Reader
	max  int   // longest line accepted, in bytes
	line int64 // number of the last line returned
	buf  []byte
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 1<<20), max: maxLineBytes}
}

// next returns the next line without its line ending (\n or \r\n; a
// byte-order mark at the start of the stream is dropped), its number, and
// how many bytes it took in the stream. The line is valid until the next
// call. At the end it returns io.EOF; a line longer than the maximum is
// skipped and reported with errLineTooLong, after which reading may go on.
func (lr *lineReader) next() (line []byte, num int64, consumed int64, err error) {
	lr.buf = lr.buf[:0]
	tooLong := false
	for {
		chunk, rerr := lr.r.ReadSlice('\n')
		consumed += int64(len(chunk))
		if !tooLong {
			if len(lr.buf)+len(chunk) > lr.max+2 {
				tooLong = true
				lr.buf = lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, chunk...)
			}
		}
		if errors.Is(rerr, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(rerr, io.EOF) {
			if consumed == 0 {
				return nil, lr.line, 0, io.EOF
			}
			break
		}
		if rerr != nil {
			return nil, lr.line, consumed, rerr
		}
		break
	}
	lr.line++
	b := bytes.TrimSuffix(lr.buf, []byte{'\n'})
	b = bytes.TrimSuffix(b, []byte{'\r'})
	if lr.line == 1 {
		b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	}
	if tooLong || len(b) > lr.max {
		return nil, lr.line, consumed, fmt.Errorf("%w (more than %d bytes)", errLineTooLong, lr.max)
	}
	return b, lr.line, consumed, nil
}

// isBlank reports whether a line holds only white space; blank lines are
// skipped.
func isBlank(line []byte) bool { return len(bytes.TrimSpace(line)) == 0 }

// parseEventLine parses one NDJSON line into an event. The line is a JSON
// object in one of two forms:
//
//   - a CloudEvent in structured mode (specversion "1.0", id, source, type,
//     subject, time, datacontenttype, data or data_base64, and extension
//     attributes such as actor, clientip, correlationid, causationid,
//     transactionid, schemarevision), as "jetsource events --output json"
//     prints them. The subject attribute is the NATS subject the event is
//     stored on; [jetsource.FromCloudEvent] maps the attributes.
//   - the short form, without specversion: only subject is required, the
//     other attributes are optional and get the defaults of "jetsource
//     append" (a random id, the store's source, the type derived from the
//     subject, the time of the append).
//
// The attribute "sequence" of exported events is ignored: the stream
// assigns sequences. data_base64 without a datacontenttype is
// application/octet-stream.
//
// Errors match [jetsource.ErrInvalidEvent] (not JSON, not an object, not
// a valid CloudEvent) or [jetsource.ErrInvalidSubject] (no subject, or not
// a literal NATS subject).
func parseEventLine(line []byte) (jetsource.Event, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return jetsource.Event{}, fmt.Errorf("%w: not a JSON object", jetsource.ErrInvalidEvent)
	}
	if !json.Valid(line) {
		var v any
		err := json.Unmarshal(line, &v) // says where the problem is
		return jetsource.Event{}, fmt.Errorf("%w: not JSON: %v", jetsource.ErrInvalidEvent, err)
	}
	if !bytes.Contains(line, []byte(`"specversion"`)) {
		return parseShortForm(line)
	}
	var ce cloudevents.Event
	if err := ce.UnmarshalJSON(line); err != nil {
		var ve cloudevents.ValidationError
		if errors.As(err, &ve) && ve["specversion"] != nil {
			// "specversion" was only a value, or a bad one: the short
			// form tells which.
			return parseShortForm(line)
		}
		return jetsource.Event{}, fmt.Errorf("%w: not a CloudEvent: %v", jetsource.ErrInvalidEvent, err)
	}
	return fromCloudEvent(ce, nil)
}

// parseShortForm parses a line without specversion: it completes it into a
// CloudEvent the SDK accepts (specversion 1.0, placeholders for the missing
// required attributes) and clears the placeholders again, for the store to
// fill in.
func parseShortForm(line []byte) (jetsource.Event, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return jetsource.Event{}, fmt.Errorf("%w: not a JSON object: %v", jetsource.ErrInvalidEvent, err)
	}
	if v, ok := obj["specversion"]; ok {
		return jetsource.Event{}, fmt.Errorf("%w: specversion %s: only %q is supported", jetsource.ErrInvalidEvent, v, jetsource.SpecVersion)
	}
	if _, ok := obj["subject"]; !ok {
		return jetsource.Event{}, fmt.Errorf("%w: no subject: a line needs at least the NATS subject, such as {\"subject\":\"users.A.added\",\"data\":{...}}", jetsource.ErrInvalidSubject)
	}
	missing := map[string]bool{}
	for k, placeholder := range map[string]string{"id": `"-"`, "source": `"/"`, "type": `"-"`} {
		if _, ok := obj[k]; !ok {
			missing[k] = true
			obj[k] = json.RawMessage(placeholder)
		}
	}
	obj["specversion"] = json.RawMessage(`"` + jetsource.SpecVersion + `"`)
	full, err := json.Marshal(obj)
	if err != nil {
		return jetsource.Event{}, fmt.Errorf("%w: %v", jetsource.ErrInvalidEvent, err)
	}
	var ce cloudevents.Event
	if err := ce.UnmarshalJSON(full); err != nil {
		return jetsource.Event{}, fmt.Errorf("%w: not a CloudEvent: %v", jetsource.ErrInvalidEvent, err)
	}
	return fromCloudEvent(ce, missing)
}

// fromCloudEvent maps a parsed CloudEvent to an event with
// [jetsource.FromCloudEvent]; the attributes in missing are cleared.
func fromCloudEvent(ce cloudevents.Event, missing map[string]bool) (jetsource.Event, error) {
	if v := ce.SpecVersion(); v != jetsource.SpecVersion {
		return jetsource.Event{}, fmt.Errorf("%w: specversion %q: only %q is supported", jetsource.ErrInvalidEvent, v, jetsource.SpecVersion)
	}
	if ce.Subject() == "" {
		return jetsource.Event{}, fmt.Errorf("%w: no subject: the CloudEvents subject attribute must hold the NATS subject, such as users.A.added", jetsource.ErrInvalidSubject)
	}
	e, err := jetsource.FromCloudEvent(ce)
	if err != nil {
		return jetsource.Event{}, err
	}
	e.Sequence = 0
	// The SDK's writers trim these, so that is how the events print: trim
	// them on the way in too, for one form.
	e.ID, e.Type = strings.TrimSpace(e.ID), strings.TrimSpace(e.Type)
	e.DataContentType, e.DataSchema = strings.TrimSpace(e.DataContentType), strings.TrimSpace(e.DataSchema)
	if ce.DataBase64 && e.DataContentType == "" {
		e.DataContentType = "application/octet-stream"
	}
	if missing["id"] {
		e.ID = ""
	}
	if missing["source"] {
		e.Source = ""
	}
	if missing["type"] {
		e.Type = ""
	}
	return e, nil
}

// eventChecker finds, before anything is written, what the server would
// refuse: an invalid event (see [jetsource.Prepare]), a subject the stream
// does not capture, an event larger than the server or the stream accepts.
type eventChecker struct {
	// forbid refuses subjects no append may write (see
	// jetstore.Store.CheckSubject).
	forbid  func(subjects.Subject) error
	source  string
	stream  string
	capture []subjects.Filter // nil: not checked
	maxSize int64             // 0: not checked
}

// batchHeaderOverhead is room for the headers an atomic batch adds to each
// message (batch id, sequence, commit, expected stream and last sequence).
const batchHeaderOverhead = 256

// newEventChecker reads the stream's subjects and size limit.
func (m *Main) newEventChecker(ctx context.Context, c *client) (*eventChecker, error) {
	ch := &eventChecker{source: c.store.Source(), stream: c.store.Stream(), maxSize: c.nc.MaxPayload()}
	ch.forbid = func(s subjects.Subject) error { return c.store.CheckSubject(ctx, s) }
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, ch.stream)
	if err != nil {
		return nil, fmt.Errorf("%w: stream %q: %w", jetsource.ErrStreamNotFound, ch.stream, err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxMsgSize > 0 && int64(cfg.MaxMsgSize) < ch.maxSize {
		ch.maxSize = int64(cfg.MaxMsgSize)
	}
	for _, s := range cfg.Subjects {
		if jetsource.InternalSubject(s) {
			continue // the stream's guard subject
		}
		f, err := subjects.ParseFilter(s)
		if err != nil {
			ch.capture = nil // a subject we cannot read: leave it to the server
			break
		}
		ch.capture = append(ch.capture, f)
	}
	return ch, nil
}

// check prepares the event (see [jetsource.Prepare]) and returns it, or
// the reason the server would refuse it: [jetsource.ErrInvalidSubject],
// [jetsource.ErrInvalidEvent], [jetsource.ErrInvalidData],
// [jetsource.ErrForbiddenSubject] (a system subject, the command bus, a
// subject the stream does not capture, which also matches
// [jetsource.ErrStreamNotFound]) or [jetsource.ErrPayloadTooLarge].
func (ch *eventChecker) check(e jetsource.Event, now time.Time) (jetsource.Event, error) {
	if err := jetsource.CheckSubject(e.Subject); err != nil {
		return e, err
	}
	if ch.forbid != nil {
		if err := ch.forbid(e.Subject); err != nil {
			return e, err
		}
	}
	p, err := jetsource.Prepare(e, ch.source, now)
	if err != nil {
		return e, err
	}
	if ch.capture != nil {
		captured := false
		for _, f := range ch.capture {
			if f.Match(p.Subject) {
				captured = true
				break
			}
		}
		if !captured {
			names := make([]string, len(ch.capture))
			for i, f := range ch.capture {
				names[i] = f.String()
			}
			return e, fmt.Errorf("%w: stream %s does not capture %s (it captures %s)", jetsource.ErrStreamNotFound, ch.stream, p.Subject, strings.Join(names, ", "))
		}
	}
	if ch.maxSize > 0 {
		extra := int64(len(jetsource.HeaderMsgID)+len(p.ID)+4) + batchHeaderOverhead + int64(len(ch.stream))
		if msgSizeBound(p)+extra <= ch.maxSize {
			return p, nil // the common case: far below the limit
		}
		size := int64(jetsource.MsgSize(p.Msg())) + extra
		if size > ch.maxSize {
			return e, fmt.Errorf("%w: event on %s takes %d bytes with its headers, the maximum is %d", jetsource.ErrPayloadTooLarge, p.Subject, size, ch.maxSize)
		}
	}
	return p, nil
}

// msgSizeBound is an upper bound of the size of the event's message
// (see [jetsource.Event.Msg]) that costs no encoding: each header at most
// 20 bytes of name and framing, each value percent-encoded at worst.
func msgSizeBound(e jetsource.Event) int64 {
	const perHeader = 20 + len(": \r\n")
	n := len(e.Data) + len("NATS/1.0\r\n\r\n") + 2*perHeader + len(jetsource.SpecVersion) + len(time.RFC3339Nano) + 16 + len(e.DataContentType)
	for _, v := range [...]string{e.ID, e.Source, e.Type, e.DataSchema, e.Actor, e.ClientIP, e.CorrelationID, e.CausationID, e.TransactionID} {
		n += perHeader + 3*len(v)
	}
	n += perHeader + 11 // schema revision
	for k, v := range e.Extensions {
		n += len(jetsource.HeaderPrefix) + len(k) + perHeader + 3*len(v)
	}
	return int64(n)
}

// lineError is a bad or failed line of an input file.
type lineError struct {
	Line  int64  `json:"line"`
	Error string `json:"error"`
}

// importSummary is what "jetsource import" prints at the end; with
// --output json it is one JSON object.
type importSummary struct {
	File           string      `json:"file"`
	OnError        string      `json:"on_error"`
	Lines          int64       `json:"lines"`
	Dedup          bool        `json:"dedup"`
	Imported       int64       `json:"imported"`
	Duplicates     int64       `json:"duplicates"`
	BadLines       int64       `json:"bad_lines"`
	Failed         int64       `json:"failed"`
	Written        bool        `json:"written"`
	Interrupted    bool        `json:"interrupted,omitempty"`
	StoppedAt      int64       `json:"stopped_at_line,omitempty"`
	ElapsedSeconds float64     `json:"elapsed_seconds"`
	EventsPerSec   float64     `json:"events_per_sec"`
	Errors         []lineError `json:"errors,omitempty"`
}

// Values of --on-error.
const (
	onErrorAbort = "abort"
	onErrorSkip  = "skip"
)

func (m *Main) newImportCmd(g *globals) *cobra.Command {
	var onError string
	var noProgress bool
	var flushEvery int
	var dedup bool
	cmd := &cobra.Command{
		Use:   "import FILE|- [--on-error abort|skip]",
		Short: "Load events from an NDJSON file into the stream, pipelined",
		Long: `import reads FILE ("-": standard input), one event per line (NDJSON), and
appends the events through the pipelined publisher: many in flight,
coalesced into atomic batches, in file order within each aggregate. The
file is streamed: memory stays bounded however large it is.

Each line is a CloudEvent in JSON (structured mode) whose "subject"
attribute is the NATS subject, exactly as "jetsource events --output json"
prints them, so "jetsource events -o json > f; jetsource import f" copies
events between servers. A line without "specversion" is the short form:
only "subject" is required ({"subject":"users.A.added","data":{...}}) and
the other attributes get the defaults of "jetsource append". Blank lines are
skipped.

--on-error chooses what a bad line (not a valid event, a subject the stream
does not capture, too large) does:
  abort  (default) read the whole file first and write nothing if any line
         is bad; every bad line is reported with its number. Two passes over
         the file (standard input is first copied to a temporary file).
  skip   write the good lines and report the bad ones; the exit status is
         still 1 if any line was bad.
A write error (the server unavailable, say) stops the import in both modes:
no further line is read, the events already acknowledged stay written, and
within an aggregate nothing after a failed event is written. Re-running the
import resumes it. Ctrl-C stops it the same way.

Re-running an import stores nothing new (--dedup, on by default), however
long ago the first run was:
  - a line without an id gets one derived from its content: its subject,
    type, source, time, data and other attributes as written, and the
    ordinal of that same content among the file's lines (two identical
    lines are two events; the same file imported again gives them the
    same two ids). The id is "imp-" and 32 hex digits.
  - before an event is appended, the events stored on its subject are
    looked up: an event whose id is stored there is not appended again and
    counts as a duplicate (an id stored there with other type, content type
    or data is a reused id: the import stops, exit status 3). Each subject
    is read once (its ids are kept for up to 200000 ids in all), and up to
    32 lookups run ahead of the appends.
With --dedup=false, lines without an id get a new random id on every run
and are stored again, and only the stream's duplicate window
(stream.duplicates, 2m by default) keeps an event id from being stored
twice.

Progress goes to standard error: a bar with the rate and the time left on a
terminal, a plain line every second otherwise (--no-progress: none). The
summary (imported: new events stored; duplicates: events already stored,
not stored again; bad lines, elapsed time, rate) goes to standard output;
with --output json it is one JSON object.

Exit status: 0 when every line was imported or a duplicate, 1 when a line
was bad or a write failed, 2 for a usage error, 3 when an event id is
stored with other content.`,
		Example: `  jetsource events -o json > events.ndjson
  jetsource import events.ndjson --server nats://other:4222
  jetsource import big.ndjson --on-error skip -o json
  jetsource import seed.ndjson --dedup=false     # id-less lines are new events every run
  gunzip -c events.ndjson.gz | jetsource import -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if onError != onErrorAbort && onError != onErrorSkip {
				return usagef("--on-error must be %s or %s, not %q", onErrorAbort, onErrorSkip, onError)
			}
			if flushEvery <= 0 {
				return usagef("--flush-every must be positive")
			}
			imp := &importRun{m: m, g: g, onError: onError, noProgress: noProgress, flushEvery: flushEvery, dedup: dedup, start: time.Now()}
			imp.sum = importSummary{File: args[0], OnError: onError, Dedup: dedup}
			return imp.run(cmd.Context(), cmd.InOrStdin(), args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&onError, "on-error", onErrorAbort, "what a bad line does: abort (validate the whole file first, write nothing if a line is bad) or skip (write the good lines, report the bad ones)")
	f.BoolVar(&noProgress, "no-progress", false, "do not report progress on standard error")
	f.BoolVar(&dedup, "dedup", true, "derive the id of a line without one from its content, and append no event whose id is already stored on its subject (--dedup=false: random ids, only the stream's duplicate window applies)")
	f.IntVar(&flushEvery, "flush-every", importFlushEvery, "appends between two collections of their results (bounds memory)")
	_ = f.MarkHidden("flush-every")
	return cmd
}

// importRun is one run of "jetsource import".
type importRun struct {
	// forbidden is set when a bad line names a forbidden subject: the
	// run then exits with the usage status.
	forbidden  bool
	m          *Main
	g          *globals
	onError    string
	noProgress bool
	flushEvery int
	dedup      bool
	start      time.Time
	sum        importSummary
	prog       *progress
}

// input is an opened input file: its reader, size (-1: unknown) and a way
// to read it again from the start (nil: it cannot be).
type input struct {
	r      io.Reader
	size   int64
	rewind func() error
	close  func()
}

// openInput opens name, or standard input for "-". With seekable, standard
// input is first copied to a temporary file so it can be read twice.
func openInput(stdin io.Reader, name string, seekable bool) (*input, error) {
	if name == "-" {
		if !seekable {
			return &input{r: stdin, size: -1, close: func() {}}, nil
		}
		tmp, err := os.CreateTemp("", "jetsource-import-*.ndjson")
		if err != nil {
			return nil, fmt.Errorf("copy standard input: %w", err)
		}
		cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
		n, err := io.Copy(tmp, stdin)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("copy standard input: %w", err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			cleanup()
			return nil, err
		}
		return &input{r: tmp, size: n, rewind: func() error { _, err := tmp.Seek(0, io.SeekStart); return err }, close: cleanup}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	in := &input{r: f, size: -1, close: func() { f.Close() }}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		in.size = fi.Size()
		in.rewind = func() error { _, err := f.Seek(0, io.SeekStart); return err }
	}
	if seekable && in.rewind == nil {
		// A named pipe or a device: copy it like standard input.
		defer f.Close()
		return openInput(f, "-", true)
	}
	return in, nil
}

func (r *importRun) run(ctx context.Context, stdin io.Reader, name string) error {
	in, err := openInput(stdin, name, r.onError == onErrorAbort)
	if err != nil {
		return err
	}
	defer in.close()
	c, err := r.m.connect(ctx, r.g)
	if err != nil {
		return err
	}
	defer c.Close()
	check, err := r.m.newEventChecker(ctx, c)
	if err != nil {
		return err
	}
	if r.onError == onErrorAbort {
		if err := r.validate(ctx, in, check); err != nil {
			return err
		}
		if r.sum.BadLines > 0 {
			r.printSummary()
			return exitCodeError{code: r.badLinesCode(), err: fmt.Errorf("%d bad line(s); nothing written (--on-error=abort)", r.sum.BadLines)}
		}
		if err := in.rewind(); err != nil {
			return fmt.Errorf("read %s again: %w", name, err)
		}
		r.sum.Lines, r.sum.Errors = 0, nil
	}
	werr := r.write(ctx, in, c, check)
	r.printSummary()
	switch {
	case r.sum.Interrupted:
		return exitCodeError{code: exitError, err: fmt.Errorf("interrupted (%w) at line %d: it and the lines after it were not imported; re-run the import to resume (%s)", werr, r.sum.StoppedAt, r.resumeHint())}
	case errors.Is(werr, jetsource.ErrIDReused):
		return exitCodeError{code: exitConflict, err: werr}
	case werr != nil:
		return exitCodeError{code: exitError, err: werr}
	case r.sum.BadLines > 0:
		return exitCodeError{code: r.badLinesCode(), err: fmt.Errorf("%d bad line(s) not imported; the %d good one(s) were (--on-error=skip)", r.sum.BadLines, r.sum.Imported+r.sum.Duplicates)}
	}
	return nil
}

// resumeHint tells how a re-run skips what is stored.
func (r *importRun) resumeHint() string {
	if r.dedup {
		return "the events already stored are looked up and skipped"
	}
	return "ids de-duplicate within the stream's duplicate window; lines without an id would be stored again"
}

// badLinesCode is the exit status of a run with bad lines: a usage error
// when one names a subject jetsource never writes, else an error.
func (r *importRun) badLinesCode() int {
	if r.forbidden {
		return exitUsage
	}
	return exitError
}

func (r *importRun) newProgress(total int64, label string) *progress {
	return newProgress(r.m.Stderr, total, label, withProgressDisabled(r.noProgress))
}

// bad records a bad line.
func (r *importRun) bad(line int64, err error) {
	r.sum.BadLines++
	r.forbidden = r.forbidden || errors.Is(err, jetsource.ErrForbiddenSubject)
	r.report(line, err)
}

// report prints a line's error and keeps it for the summary.
func (r *importRun) report(line int64, err error) {
	n := len(r.sum.Errors)
	switch {
	case n < maxReportedErrors:
		r.sum.Errors = append(r.sum.Errors, lineError{Line: line, Error: err.Error()})
		r.prog.Println(fmt.Sprintf("line %d: %v", line, err))
	case n == maxReportedErrors:
		r.sum.Errors = append(r.sum.Errors, lineError{Line: line, Error: "(more errors not shown)"})
		r.prog.Println(fmt.Sprintf("line %d: %v (further errors are counted, not shown)", line, err))
	}
}

// validate is the first pass of --on-error=abort: it checks every line and
// writes nothing.
func (r *importRun) validate(ctx context.Context, in *input, check *eventChecker) error {
	r.prog = r.newProgress(in.size, "validate")
	defer r.prog.Finish()
	lr := newLineReader(in.r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, num, n, err := lr.next()
		r.prog.Add(n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		r.sum.Lines = num
		if errors.Is(err, errLineTooLong) {
			r.bad(num, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("read line %d: %w", num+1, err)
		}
		if isBlank(line) {
			continue
		}
		e, err := parseEventLine(line)
		if err == nil {
			_, err = check.check(e, time.Now())
		}
		if err != nil {
			r.bad(num, err)
		}
	}
}

// With --dedup, the lookups of the stored ids run ahead of the appends:
// up to importLookups at a time, for up to importLookahead lines (or
// importLookaheadBytes of data) read and not yet appended. The lines are
// appended in bursts, half the lookahead at a time, so that the publisher
// can coalesce them into large batches as it does without lookups.
const (
	importLookups        = 32
	importLookahead      = 4096
	importLookaheadBytes = 32 << 20
)

// importLine is a good line on its way to the publisher: with --dedup,
// its lookup runs while later lines are read.
type importLine struct {
	num  int64
	e    jetsource.Event
	done chan struct{} // closed when the lookup below is known
	// The lookup: the sequence of the stored event with e's id on e's
	// subject (0: none), or its error (a reused id, or a failed read).
	seq uint64
	err error
}

// write streams the lines into the publisher: bad lines are reported and
// skipped, the results of the appends are collected at every flush. A
// write error stops it. With --dedup, a line without an id gets its
// content id, and each event is looked up on its subject first: those
// stored are counted as duplicates and not appended.
func (r *importRun) write(ctx context.Context, in *input, c *client, check *eventChecker) (err error) {
	r.prog = r.newProgress(in.size, "import")
	defer r.prog.Finish()
	pub, err := publisher.New(c.store, publisher.WithTimeout(r.g.timeout))
	if err != nil {
		return err
	}
	var index *storedIndex
	var ords *ordinals
	if r.dedup {
		if index, err = newStoredIndex(ctx, c, r.g.timeout); err != nil {
			return err
		}
		ords = newOrdinals()
	}
	var lookups sync.WaitGroup // every lookup ends before write returns
	defer lookups.Wait()
	lctx, cancelLookups := context.WithCancel(ctx)
	defer cancelLookups()
	sem := make(chan struct{}, importLookups)

	var lines []int64            // line numbers of the appends since the last flush
	var futs []*publisher.Future // their futures
	checked := 0                 // futures known to have succeeded
	var werr error               // the first write error
	fail := func(line int64, err error) {
		r.sum.Failed++
		if werr == nil { // the later failures are counted, not listed
			werr = fmt.Errorf("line %d: not written: %w; the import stopped (see \"failed\" for how many appends were not written; within an aggregate nothing after a failed event is written; re-run the import to resume)", line, err)
			r.report(line, fmt.Errorf("not written: %w", err))
		}
	}
	collect := func(results []publisher.Result) {
		for i, res := range results {
			switch {
			case res.Err != nil:
				fail(lines[i], res.Err)
			case res.Ack.Duplicate:
				r.sum.Duplicates++
			default:
				r.sum.Imported++
			}
			r.sum.Written = r.sum.Written || !res.Ack.Duplicate && res.Err == nil
		}
		lines = lines[len(results):]
		futs = futs[len(results):]
		checked = max(0, checked-len(results))
	}
	defer func() {
		// Close with a fresh context: an interrupted import still
		// collects the results of what it sent.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*r.g.timeout)
		defer cancel()
		results, cerr := pub.Close(cctx)
		collect(results)
		if err == nil && werr != nil {
			err = werr
		}
		if err == nil && cerr != nil {
			err = fmt.Errorf("finish the import: %w", cerr)
		}
	}()

	// queue holds the lines read but not yet appended, in file order,
	// with queued bytes of data.
	var queue []*importLine
	queued := 0
	interrupted := func(cerr error) error {
		r.sum.Interrupted, r.sum.StoppedAt = true, queue[0].num
		return cerr
	}
	pop := func() {
		queued -= len(queue[0].e.Data)
		queue[0] = nil
		queue = queue[1:]
	}
	// appendHead settles the first queued line, whose lookup is done:
	// a duplicate, a reused id, or an append.
	appendHead := func() error {
		l := queue[0]
		switch {
		case l.err != nil:
			if ctx.Err() != nil {
				return interrupted(ctx.Err())
			}
			fail(l.num, l.err)
			pop()
			return nil
		case l.seq != 0:
			r.sum.Duplicates++
			pop()
			return nil
		}
		fut, aerr := pub.Append(ctx, l.e)
		if aerr != nil {
			if ctx.Err() != nil {
				return interrupted(ctx.Err())
			}
			r.bad(l.num, aerr)
			pop()
			return nil
		}
		pop()
		lines, futs = append(lines, l.num), append(futs, fut)
		if len(lines) >= r.flushEvery {
			results, ferr := pub.Flush(ctx)
			collect(results)
			if ferr != nil {
				r.sum.Interrupted, r.sum.StoppedAt = true, l.num+1
				return ferr
			}
		}
		return nil
	}
	// drain appends queued lines in order, waiting for their lookups:
	// all of them, or (when the lookahead is full) half of them.
	drain := func(all bool) error {
		if !all && len(queue) < importLookahead && queued < importLookaheadBytes {
			return nil
		}
		keep := 0
		if !all {
			keep = len(queue) / 2
		}
		for len(queue) > keep && werr == nil && !failedEarly(futs, &checked) {
			select {
			case <-queue[0].done:
			case <-ctx.Done():
				return interrupted(ctx.Err())
			}
			if err := appendHead(); err != nil {
				return err
			}
		}
		return nil
	}

	lr := newLineReader(in.r)
	for werr == nil && !failedEarly(futs, &checked) {
		if err := ctx.Err(); err != nil {
			if len(queue) > 0 {
				return interrupted(err)
			}
			r.sum.Interrupted, r.sum.StoppedAt = true, lr.line+1
			return err
		}
		line, num, n, rerr := lr.next()
		r.prog.Add(n)
		if errors.Is(rerr, io.EOF) {
			return drain(true)
		}
		r.sum.Lines = num
		if errors.Is(rerr, errLineTooLong) {
			r.bad(num, rerr)
			continue
		}
		if rerr != nil {
			return fmt.Errorf("read line %d: %w", num+1, rerr)
		}
		if isBlank(line) {
			continue
		}
		e, perr := parseEventLine(line)
		if perr == nil && r.dedup && e.ID == "" {
			e.ID = contentID(e, ords)
		}
		if perr == nil {
			e, perr = check.check(e, time.Now())
		}
		if perr != nil {
			r.bad(num, perr)
			continue
		}
		l := &importLine{num: num, e: e, done: make(chan struct{})}
		if index == nil {
			// Nothing to look up: straight to the publisher.
			close(l.done)
			queue = append(queue, l)
			if err := drain(true); err != nil {
				return err
			}
			continue
		}
		queue, queued = append(queue, l), queued+len(e.Data)
		sem <- struct{}{}
		lookups.Go(func() {
			defer func() { <-sem }()
			defer close(l.done)
			l.seq, l.err = index.lookup(lctx, l.e)
		})
		if err := drain(false); err != nil {
			return err
		}
	}
	return werr
}

// contentID returns the id of an event read from a line without one: "imp-"
// and 32 hex digits of a SHA-256 over its attributes as the line gives them
// (type and content type defaulted as [jetsource.Prepare] does), its data
// as it will be stored, and the ordinal of that content among the lines
// read so far (ords), so that identical lines get different ids, and the
// same file the same ids.
func contentID(e jetsource.Event, ords *ordinals) string {
	key := contentKey(e)
	h := sha256.New()
	h.Write(key[:])
	fmt.Fprintf(h, "#%d", ords.next(key))
	return "imp-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// contentKey hashes what a line says about its event, the id aside.
func contentKey(e jetsource.Event) [sha256.Size]byte {
	typ := e.Type
	if typ == "" {
		typ = jetsource.TypeFromSubject(e.Subject)
	}
	ct := e.DataContentType
	if ct == "" && len(e.Data) > 0 {
		ct = "application/json"
	}
	var t string
	if !e.Time.IsZero() {
		t = e.Time.UTC().Format(time.RFC3339Nano)
	}
	parts := []string{e.Subject.String(), typ, e.Source, t, ct, e.DataSchema, string(e.Data),
		e.Actor, e.ClientIP, e.CorrelationID, e.CausationID, e.TransactionID, strconv.Itoa(e.SchemaRevision)}
	for _, k := range slices.Sorted(maps.Keys(e.Extensions)) {
		parts = append(parts, k, e.Extensions[k])
	}
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed: no two different events share an input.
		fmt.Fprintf(h, "%d:", len(p))
		h.Write([]byte(p))
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// ordinalBloomBits is the size of the filter that tells the first
// occurrence of a content from a possible repetition: 2^27 bits (16 MiB,
// touched only as used). It is fixed, so that the same file gives the
// same ordinals whatever its size is known to be.
const ordinalBloomBits = 1 << 27

// ordinals numbers the occurrences of each content in a file within
// bounded memory: a Bloom filter of the contents seen, and a count for
// each content the filter may have seen. A content seen for the first
// time gets 0, and later occurrences 1, 2 and so on; on the rare false
// positive of the filter a first occurrence gets a count too. Either way
// the occurrences of one content get distinct ordinals, and the same file
// read in the same order gets the same ordinals.
type ordinals struct {
	bloom  []uint64
	counts map[uint64]uint32
}

func newOrdinals() *ordinals {
	return &ordinals{bloom: make([]uint64, ordinalBloomBits/64), counts: map[uint64]uint32{}}
}

// next returns the ordinal of this occurrence of the content key.
func (o *ordinals) next(key [sha256.Size]byte) uint32 {
	seen := true
	for i := range 4 {
		bit := binary.LittleEndian.Uint64(key[8*i:]) % ordinalBloomBits
		if o.bloom[bit/64]&(1<<(bit%64)) == 0 {
			seen = false
			o.bloom[bit/64] |= 1 << (bit % 64)
		}
	}
	if !seen {
		return 0
	}
	k := binary.LittleEndian.Uint64(key[:])
	o.counts[k]++
	return o.counts[k]
}

// storedIDsLimit bounds the ids the stored index keeps; beyond it, it
// forgets them all and reads subjects again as they come.
const storedIDsLimit = 200000

// storedIndex answers whether an event id is stored on a subject, beyond
// the stream's duplicate window. It reads the last event of each subject
// (a direct get by subject), and the others only when an id is looked for
// that is not the last one's (a direct get per event), and keeps the ids
// read.
// It is safe for concurrent use.
type storedIndex struct {
	stream  jetstream.Stream
	name    string
	timeout time.Duration

	mu   sync.Mutex
	subs map[string]*subjectIDs
	size int // ids kept
}

// subjectIDs are the event ids stored on one subject: at first only the
// last event's (a cheap direct get by subject), all of them once an id is
// looked for that is not the last one.
type subjectIDs struct {
	ready   chan struct{} // closed once the last event is read
	lastSeq uint64        // 0: no event on the subject
	ids     map[string]storedID
	full    chan struct{} // nil until all ids are read; closed once they are
	err     error
}

// storedID is where an id is stored and a hash of the content the store
// compares for reused ids (see [jetsource.ContentDiffers]).
type storedID struct {
	seq     uint64
	content [sha256.Size]byte
}

func newStoredIndex(ctx context.Context, c *client, timeout time.Duration) (*storedIndex, error) {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, c.store.Stream())
	if err != nil {
		return nil, fmt.Errorf("%w: stream %q: %w", jetsource.ErrStreamNotFound, c.store.Stream(), err)
	}
	return &storedIndex{stream: st, name: c.store.Stream(), timeout: timeout, subs: map[string]*subjectIDs{}}, nil
}

// lookup returns the sequence of the stored event with e's id on e's
// subject (0: none). It returns an [*jetsource.IDReusedError] when that
// event has other content than e (a prepared event), and the error of a
// failed read of the subject.
func (x *storedIndex) lookup(ctx context.Context, e jetsource.Event) (uint64, error) {
	subject := e.Subject.String()
	x.mu.Lock()
	s := x.subs[subject]
	loader := s == nil
	if loader {
		s = &subjectIDs{ready: make(chan struct{})}
		x.subs[subject] = s
	}
	x.mu.Unlock()
	if loader {
		ids := map[string]storedID{}
		last, err := x.read(ctx, subject, 0, ids)
		x.mu.Lock()
		s.ids, s.err = ids, err
		if err == nil && last != nil {
			s.lastSeq = last.Sequence
		}
		x.keptLocked(subject, s, len(ids))
		x.mu.Unlock()
		close(s.ready)
	}
	if err := wait(ctx, s.ready); err != nil {
		return 0, err
	}
	got, found, err := x.find(s, e.ID)
	if err != nil || found || s.lastSeq == 0 {
		return got.seq, x.check(ctx, e, got, found, err)
	}
	// Not the last event's id: read them all, once.
	x.mu.Lock()
	loader = s.full == nil
	if loader {
		s.full = make(chan struct{})
	}
	x.mu.Unlock()
	if loader {
		ids := map[string]storedID{}
		err := x.readAll(ctx, subject, s.lastSeq, ids)
		x.mu.Lock()
		n := len(ids) - len(s.ids)
		maps.Copy(ids, s.ids)
		s.ids, s.err = ids, err
		x.keptLocked(subject, s, n)
		x.mu.Unlock()
		close(s.full)
	}
	if err := wait(ctx, s.full); err != nil {
		return 0, err
	}
	got, found, err = x.find(s, e.ID)
	return got.seq, x.check(ctx, e, got, found, err)
}

// wait waits for ch to be closed or ctx to end.
func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// find returns what s holds of an id.
func (x *storedIndex) find(s *subjectIDs, id string) (storedID, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	got, ok := s.ids[id]
	return got, ok, s.err
}

// check is the result of a lookup: its error, a reused id, or nil.
func (x *storedIndex) check(ctx context.Context, e jetsource.Event, got storedID, found bool, err error) error {
	switch {
	case err != nil:
		return err
	case found && got.content != storedContent(e):
		return x.reusedError(ctx, e, got.seq)
	}
	return nil
}

// keptLocked counts n more ids kept for subject s; a failed read is
// forgotten, to be tried again by the next line, and beyond the limit
// every subject is.
func (x *storedIndex) keptLocked(subject string, s *subjectIDs, n int) {
	if s.err != nil {
		if x.subs[subject] == s {
			delete(x.subs, subject)
		}
		return
	}
	x.size += n
	if x.size > storedIDsLimit {
		x.subs, x.size = map[string]*subjectIDs{}, 0
	}
}

// reusedError reads the event stored at seq again to name what differs.
func (x *storedIndex) reusedError(ctx context.Context, e jetsource.Event, seq uint64) error {
	ue := &jetsource.IDReusedError{ID: e.ID, Stream: x.name, Sequence: seq}
	ctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	if m, err := x.stream.GetMsg(ctx, seq); err == nil {
		stored := jetsource.DecodeStored(m.Subject, m.Header, m.Data, jetsource.Stored{Stream: x.name, Sequence: m.Sequence, Time: m.Time})
		ue.Differs = jetsource.ContentDiffers(e, stored)
	}
	return ue
}

// read reads one event stored on subject into ids: the last one (seq 0),
// or the first at or after seq. It returns nil and no error when there is
// none.
func (x *storedIndex) read(ctx context.Context, subject string, seq uint64, ids map[string]storedID) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	var m *jetstream.RawStreamMsg
	var err error
	if seq == 0 {
		m, err = x.stream.GetLastMsgForSubject(ctx, subject)
	} else {
		m, err = x.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the events stored on %s: %w", subject, err)
	}
	if id := m.Header.Get(jetsource.HeaderMsgID); id != "" {
		stored := jetsource.DecodeStored(m.Subject, m.Header, m.Data, jetsource.Stored{Stream: x.name, Sequence: m.Sequence, Time: m.Time})
		ids[id] = storedID{seq: m.Sequence, content: storedContent(stored)}
	}
	return m, nil
}

// readAll reads the events stored on subject before sequence last into
// ids, from the stream's start (never asking past last, which would make
// the server scan to the stream's end).
func (x *storedIndex) readAll(ctx context.Context, subject string, last uint64, ids map[string]storedID) error {
	for seq := uint64(1); seq < last; {
		m, err := x.read(ctx, subject, seq, ids)
		if err != nil || m == nil {
			return err
		}
		seq = m.Sequence + 1
	}
	return nil
}

// storedContent hashes what [jetsource.ContentDiffers] compares, the
// subject aside: type, content type and data.
func storedContent(e jetsource.Event) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range []string{e.Type, e.DataContentType, string(e.Data)} {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// failedEarly looks at the futures from *checked on that have their
// result, in order, and reports whether one failed: the import then stops
// reading at once rather than at the next flush.
func failedEarly(futs []*publisher.Future, checked *int) bool {
	for *checked < len(futs) {
		f := futs[*checked]
		select {
		case <-f.Done():
			if _, err := f.Wait(context.Background()); err != nil {
				return true
			}
			*checked++
		default:
			return false
		}
	}
	return false
}

func (r *importRun) printSummary() {
	s := &r.sum
	elapsed := time.Since(r.start)
	s.ElapsedSeconds = elapsed.Seconds()
	if secs := elapsed.Seconds(); secs > 0 {
		s.EventsPerSec = float64(s.Imported+s.Duplicates) / secs
	}
	if r.g.output == "json" {
		r.m.writeJSON(s)
		return
	}
	w := r.m.Stdout
	fmt.Fprintf(w, "imported    %d (new)\n", s.Imported)
	fmt.Fprintf(w, "duplicates  %d (already stored)\n", s.Duplicates)
	fmt.Fprintf(w, "bad lines   %d\n", s.BadLines)
	if s.Failed > 0 {
		fmt.Fprintf(w, "failed      %d\n", s.Failed)
	}
	if s.Interrupted {
		fmt.Fprintf(w, "stopped at  line %d (interrupted)\n", s.StoppedAt)
	}
	fmt.Fprintf(w, "elapsed     %s\n", roundDuration(elapsed))
	fmt.Fprintf(w, "rate        %.0f events/s\n", s.EventsPerSec)
}
