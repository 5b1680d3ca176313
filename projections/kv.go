package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// PointerBucket is the KV bucket that records, for each KV projection,
// the bucket of its live read model (key: the projection name; value:
// {"bucket":"users_g2","generation":2}). Readers look it up to find the
// current bucket after a rebuild.
const PointerBucket = "jetsource_projections"

// CheckpointKey is the key of a KV read model's checkpoint document:
// {"sequence":N,"updated":"...","last_error":"..."}. Keys starting with
// "_jetsource" are reserved.
const CheckpointKey = "_jetsource_checkpoint"

// maxBatchWrites is how many document writes fit one atomic batch with
// the checkpoint (the server's limit is 1000 messages).
const maxBatchWrites = 999

// maxDocCache bounds the documents a KV read model keeps in memory.
const maxDocCache = 20000

// KV defines a projection into documents of a NATS KV bucket.
type KV struct {
	// Name identifies the projection (see [ValidName]).
	Name string
	// Filters select the events the projection reads (none: every event).
	Filters []subjects.Filter
	// Bucket is the name of the first generation's bucket (default: the
	// projection name); a rebuild creates Bucket_g1, Bucket_g2, ...
	Bucket string
	// Apply applies one event through the batch's document accessor. An
	// error drops every write of the batch; an error matching
	// [ErrSkipEvent] drops only the event's writes and skips it. A
	// panic is an error ([ErrPanic]).
	//
	// It is not called with malformed messages ([jetsource.Event.Malformed]):
	// those are skipped with a warning and counted, unless ApplyMalformed
	// is set.
	Apply func(ctx context.Context, tx *KVTx, e jetsource.Event) error
	// ApplyMalformed makes Apply be called with malformed messages too,
	// for a projection that wants to see them (their Malformed field is
	// set; their Subject may be empty).
	ApplyMalformed bool
	// MaxBytes limits the size of each bucket the projection creates
	// (0: no limit). A full bucket refuses the batch that would not fit,
	// and the runner reports the error and retries.
	MaxBytes int64
	// Replicas of the buckets (default 1).
	Replicas int
	// Memory keeps the buckets in memory (tests).
	Memory bool
}

func (def KV) validate() error {
	var errs []error
	if err := ValidName(def.Name); err != nil {
		errs = append(errs, err)
	}
	if err := checkFilters(def.Filters); err != nil {
		errs = append(errs, err)
	}
	if def.Bucket != "" && !validBucket(def.Bucket) {
		errs = append(errs, fmt.Errorf("%w: %s: bucket name %q: use letters, digits, '_' and '-'", ErrInvalidProjection, def.Name, def.Bucket))
	}
	if def.Apply == nil {
		errs = append(errs, fmt.Errorf("%w: %s: Apply is required", ErrInvalidProjection, def.Name))
	}
	if def.Replicas < 0 || def.Replicas > 5 {
		errs = append(errs, fmt.Errorf("%w: %s: replicas %d", ErrInvalidProjection, def.Name, def.Replicas))
	}
	return errors.Join(errs...)
}

func validBucket(b string) bool {
	if b == "" || len(b) > 200 {
		return false
	}
	for _, c := range []byte(b) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidKey reports whether key may name a document: the characters NATS
// KV allows (letters, digits, '-', '/', '_', '=', '.'), not starting or
// ending with '.', and not starting with the reserved "_jetsource".
//
// Errors: [ErrInvalidProjection].
func ValidKey(key string) error {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' || strings.HasPrefix(key, "_jetsource") {
		return fmt.Errorf("%w: document key %q", ErrInvalidProjection, key)
	}
	for _, c := range []byte(key) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '/' || c == '_' || c == '=' || c == '.') {
			return fmt.Errorf("%w: document key %q: character %q is not allowed", ErrInvalidProjection, key, c)
		}
	}
	return nil
}

// KVProjection is a [Projection] into the documents of a NATS KV bucket.
//
// # Guarantee
//
// The documents a batch changes and the checkpoint document are written as
// one JetStream atomic batch on the bucket's stream: all or none, and a
// watcher sees them appear together. Every write carries the revision the
// change was computed from (an expected last subject sequence), the
// checkpoint included, so a write computed from stale data stores nothing
// of its batch: a second runner of the same projection, a writer outside
// it or a rebuild makes the batch fail with [ErrConflict], and the runner
// reads the checkpoint again and resumes from it. The checkpoint is
// therefore exact, not advisory: an event is in the bucket's documents
// once, whatever the number of crashes and redeliveries. A batch that
// changes more than 999 documents is split into several atomic batches,
// each with the checkpoint of the last event it holds entirely.
type KVProjection struct {
	def      KV
	js       jetstream.JetStream
	pointers jetstream.KeyValue

	mu   sync.Mutex
	live *kvModel
}

var _ Projection = (*KVProjection)(nil)

// pointer is the value of a projection's key in [PointerBucket].
type pointer struct {
	Bucket     string `json:"bucket"`
	Generation uint64 `json:"generation"`
}

// NewKV prepares a KV projection: the pointer bucket, and on first use
// the projection's bucket (with atomic batches allowed on its stream) and
// its pointer.
//
// Errors: [ErrInvalidProjection] for a bad definition, and the server's
// errors.
func NewKV(ctx context.Context, js jetstream.JetStream, def KV) (*KVProjection, error) {
	if err := def.validate(); err != nil {
		return nil, err
	}
	if def.Bucket == "" {
		def.Bucket = def.Name
	}
	p := &KVProjection{def: def, js: js}
	kv, err := js.KeyValue(ctx, PointerBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: PointerBucket, History: 5, Replicas: max(def.Replicas, 1), Storage: p.storage()})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, PointerBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("projections: %s: pointer bucket: %w", def.Name, err)
	}
	p.pointers = kv
	if _, _, err := p.pointer(ctx); errors.Is(err, jetstream.ErrKeyNotFound) {
		if _, err := p.openBucket(ctx, def.Bucket, true); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(pointer{Bucket: def.Bucket})
		if _, err := kv.Create(ctx, def.Name, b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("projections: %s: pointer: %w", def.Name, err)
		}
	} else if err != nil {
		return nil, err
	}
	return p, nil
}

// maxBytes is the bucket size limit of the definition, -1 for none.
func (p *KVProjection) maxBytes() int64 {
	if p.def.MaxBytes > 0 {
		return p.def.MaxBytes
	}
	return -1
}

func (p *KVProjection) storage() jetstream.StorageType {
	if p.def.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

func (p *KVProjection) pointer(ctx context.Context) (pointer, uint64, error) {
	e, err := p.pointers.Get(ctx, p.def.Name)
	if err != nil {
		return pointer{}, 0, err
	}
	var ptr pointer
	if err := json.Unmarshal(e.Value(), &ptr); err != nil || !validBucket(ptr.Bucket) {
		return pointer{}, 0, fmt.Errorf("projections: %s: bad pointer %q in bucket %s", p.def.Name, e.Value(), PointerBucket)
	}
	return ptr, e.Revision(), nil
}

// openBucket opens (or with create, creates) a bucket and makes sure its
// stream allows atomic batches.
func (p *KVProjection) openBucket(ctx context.Context, bucket string, create bool) (*kvModel, error) {
	_, err := p.js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) && create {
		_, err = p.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Replicas: max(p.def.Replicas, 1), Storage: p.storage(),
			Description: "jetsource projection " + p.def.Name, MaxBytes: p.maxBytes()})
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Created meanwhile by another process (and perhaps already
			// switched to atomic batches, so its config differs).
			_, err = p.js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("projections: %s: bucket %s: %w", p.def.Name, bucket, err)
	}
	st, err := p.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, fmt.Errorf("projections: %s: bucket %s: %w", p.def.Name, bucket, err)
	}
	if cfg := st.CachedInfo().Config; !cfg.AllowAtomicPublish {
		cfg.AllowAtomicPublish = true
		if st, err = p.js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("projections: %s: bucket %s: allow atomic batches: %w", p.def.Name, bucket, err)
		}
	}
	return &kvModel{p: p, bucket: bucket, stream: st, nc: p.js.Conn(), cache: map[string]kvDoc{}}, nil
}

// resolve returns the live read model, following the pointer.
func (p *KVProjection) resolve(ctx context.Context) (*kvModel, pointer, error) {
	ptr, _, err := p.pointer(ctx)
	if err != nil {
		return nil, ptr, fmt.Errorf("projections: %s: pointer: %w", p.def.Name, err)
	}
	p.mu.Lock()
	live := p.live
	p.mu.Unlock()
	if live != nil && live.bucket == ptr.Bucket {
		return live, ptr, nil
	}
	m, err := p.openBucket(ctx, ptr.Bucket, false)
	if err != nil {
		return nil, ptr, err
	}
	p.mu.Lock()
	p.live = m
	p.mu.Unlock()
	return m, ptr, nil
}

// Name implements [Projection].
func (p *KVProjection) Name() string { return p.def.Name }

// Filters implements [Projection].
func (p *KVProjection) Filters() []subjects.Filter { return p.def.Filters }

// KeyValue returns the live bucket, found through the pointer.
//
// Errors: the server's.
func (p *KVProjection) KeyValue(ctx context.Context) (jetstream.KeyValue, error) {
	ptr, _, err := p.pointer(ctx)
	if err != nil {
		return nil, err
	}
	return p.js.KeyValue(ctx, ptr.Bucket)
}

// Checkpoint implements [Model]: it follows the pointer to the live bucket
// and reads its checkpoint document afresh.
func (p *KVProjection) Checkpoint(ctx context.Context) (uint64, error) {
	m, _, err := p.resolve(ctx)
	if err != nil {
		return 0, err
	}
	return m.Checkpoint(ctx)
}

// Apply implements [Model] on the live bucket (the one found by the last
// Checkpoint). When a rebuild was swapped in meanwhile, it returns
// [ErrConflict].
func (p *KVProjection) Apply(ctx context.Context, after uint64, events []jetsource.Event) (uint64, error) {
	p.mu.Lock()
	m := p.live
	p.mu.Unlock()
	if m == nil {
		var err error
		if m, _, err = p.resolve(ctx); err != nil {
			return after, err
		}
	}
	cp, err := m.Apply(ctx, after, events)
	if err != nil && !errors.Is(err, ErrApply) && !errors.Is(err, ErrConflict) {
		if ptr, _, perr := p.pointer(ctx); perr == nil && ptr.Bucket != m.bucket {
			return cp, fmt.Errorf("%w: %s: the read model was rebuilt into bucket %s: %w", ErrConflict, p.def.Name, ptr.Bucket, err)
		}
	}
	return cp, err
}

// Info implements [Projection].
func (p *KVProjection) Info(ctx context.Context) (ModelInfo, error) {
	m, ptr, err := p.resolve(ctx)
	if err != nil {
		return ModelInfo{}, err
	}
	cp, _, err := m.readCheckpoint(ctx)
	if err != nil {
		return ModelInfo{}, err
	}
	return ModelInfo{Location: "kv:" + ptr.Bucket, Generation: ptr.Generation, Checkpoint: cp.Sequence, Updated: cp.Updated,
		LastError: cp.LastError, LastErrorAt: cp.LastErrorAt, ErrorSequence: cp.ErrorSequence}, nil
}

// RecordError implements [Projection]: it updates the checkpoint
// document's error fields with a compare-and-set.
func (p *KVProjection) RecordError(ctx context.Context, seq uint64, rerr error) error {
	m, _, err := p.resolve(ctx)
	if err != nil {
		return err
	}
	return m.recordError(ctx, seq, rerr)
}

// NewGeneration implements [Projection]: a new bucket named after the
// next generation (a leftover of an unfinished rebuild is deleted first).
func (p *KVProjection) NewGeneration(ctx context.Context) (Generation, error) {
	ptr, rev, err := p.pointer(ctx)
	if err != nil {
		return nil, fmt.Errorf("projections: %s: pointer: %w", p.def.Name, err)
	}
	gen := ptr.Generation + 1
	bucket := p.def.Bucket + "_g" + strconv.FormatUint(gen, 10)
	if err := p.js.DeleteKeyValue(ctx, bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("projections: %s: drop unfinished rebuild %s: %w", p.def.Name, bucket, err)
	}
	m, err := p.openBucket(ctx, bucket, true)
	if err != nil {
		return nil, err
	}
	return &kvGeneration{kvModel: m, gen: gen, old: ptr, rev: rev}, nil
}

type kvGeneration struct {
	*kvModel
	gen     uint64
	old     pointer
	rev     uint64
	swapped bool
}

func (g *kvGeneration) Location() string { return "kv:" + g.bucket }

// Swap points the projection's pointer at the new bucket (compare-and-set
// on the pointer's revision) and deletes the previous bucket.
func (g *kvGeneration) Swap(ctx context.Context) error {
	p := g.p
	b, _ := json.Marshal(pointer{Bucket: g.bucket, Generation: g.gen})
	if _, err := p.pointers.Update(ctx, p.def.Name, b, g.rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("%w: %s: the pointer changed while rebuilding: %w", ErrRebuildConflict, p.def.Name, err)
		}
		return fmt.Errorf("projections: %s: swap: %w", p.def.Name, err)
	}
	// Swapped: from here on the new bucket is the live one, and Discard
	// leaves it alone even if deleting the old one fails.
	g.swapped = true
	if err := p.js.DeleteKeyValue(context.WithoutCancel(ctx), g.old.Bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("projections: %s: swapped, but cannot delete the old bucket %s: %w", p.def.Name, g.old.Bucket, err)
	}
	return nil
}

// Discard deletes the generation's bucket, unless it was swapped in.
func (g *kvGeneration) Discard(ctx context.Context) error {
	if g.swapped {
		return nil
	}
	err := g.p.js.DeleteKeyValue(ctx, g.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	return err
}

// kvModel is one bucket of a KV projection.
type kvModel struct {
	p      *KVProjection
	bucket string
	stream jetstream.Stream
	nc     *nats.Conn

	mu    sync.Mutex // one Apply at a time
	cache map[string]kvDoc
	cp    *checkpointDoc // nil: read it again
	cpRev uint64
}

// kvDoc is a document as last seen: its value and revision (0: never
// written; a deletion has a revision too).
type kvDoc struct {
	value  []byte
	exists bool
	rev    uint64
}

type checkpointDoc struct {
	Sequence      uint64    `json:"sequence"`
	Updated       time.Time `json:"updated,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	ErrorSequence uint64    `json:"error_sequence,omitempty"`
}

func (m *kvModel) subject(key string) string { return "$KV." + m.bucket + "." + key }

// get reads the last message of a key straight from the stream, so that
// deletions are seen with their revision.
func (m *kvModel) get(ctx context.Context, key string) (kvDoc, error) {
	msg, err := m.stream.GetLastMsgForSubject(ctx, m.subject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return kvDoc{}, nil
	}
	if err != nil {
		return kvDoc{}, fmt.Errorf("projections: %s: get %s: %w", m.p.def.Name, key, err)
	}
	switch msg.Header.Get("KV-Operation") {
	case "DEL", "PURGE":
		return kvDoc{rev: msg.Sequence}, nil
	}
	return kvDoc{value: msg.Data, exists: true, rev: msg.Sequence}, nil
}

func (m *kvModel) readCheckpoint(ctx context.Context) (checkpointDoc, uint64, error) {
	d, err := m.get(ctx, CheckpointKey)
	if err != nil {
		return checkpointDoc{}, 0, err
	}
	var cp checkpointDoc
	if d.exists {
		if err := json.Unmarshal(d.value, &cp); err != nil {
			return cp, 0, fmt.Errorf("projections: %s: bad checkpoint document in %s: %w", m.p.def.Name, m.bucket, err)
		}
	}
	return cp, d.rev, nil
}

// Checkpoint implements [Model]; it reads the checkpoint afresh and drops
// the cached documents.
func (m *kvModel) Checkpoint(ctx context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.invalidate()
	cp, rev, err := m.readCheckpoint(ctx)
	if err != nil {
		return 0, err
	}
	m.cp, m.cpRev = &cp, rev
	return cp.Sequence, nil
}

func (m *kvModel) invalidate() {
	clear(m.cache)
	m.cp = nil
}

func (m *kvModel) recordError(ctx context.Context, seq uint64, rerr error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for range 3 {
		cp, rev, err := m.readCheckpoint(ctx)
		if err != nil {
			return err
		}
		cp.LastError, cp.LastErrorAt, cp.ErrorSequence = "", time.Time{}, seq
		if rerr != nil {
			cp.LastError, cp.LastErrorAt = rerr.Error(), time.Now().UTC()
		}
		b, _ := json.Marshal(cp)
		msg := &nats.Msg{Subject: m.subject(CheckpointKey), Data: b, Header: nats.Header{}}
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
		_, err = m.p.js.PublishMsg(ctx, msg)
		m.invalidate()
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			return err
		}
	}
	return fmt.Errorf("%w: %s: checkpoint keeps changing", ErrConflict, m.p.def.Name)
}

// Apply implements [Model].
func (m *kvModel) Apply(ctx context.Context, after uint64, events []jetsource.Event) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cp == nil {
		cp, rev, err := m.readCheckpoint(ctx)
		if err != nil {
			return after, err
		}
		m.cp, m.cpRev = &cp, rev
	}
	cp := m.cp.Sequence
	if cp < after {
		return after, &CheckpointError{Expected: after, Current: cp}
	}
	tx := &KVTx{m: m, writes: map[string]*kvWrite{}}
	last := cp
	for _, e := range events {
		if e.Sequence <= cp {
			continue
		}
		mark := len(tx.journal)
		apply := func() error { return m.p.def.Apply(ctx, tx, e) }
		skipped, err := applyOne(ctx, m.p.def.ApplyMalformed, e, apply)
		if skipped {
			tx.undo(mark)
			last = e.Sequence
			continue
		}
		if err == nil && len(tx.writes) > maxBatchWrites {
			tx.undo(mark)
			if len(tx.writes) == 0 {
				return m.cp.Sequence, fmt.Errorf("%w: %s: event %d changes more than %d documents", ErrTooManyWrites, m.p.def.Name, e.Sequence, maxBatchWrites)
			}
			if err := m.commit(ctx, tx, last); err != nil {
				return m.cpSeq(after), err
			}
			tx = &KVTx{m: m, writes: map[string]*kvWrite{}}
			err = safely(apply)
			if err == nil && len(tx.writes) > maxBatchWrites {
				return m.cp.Sequence, fmt.Errorf("%w: %s: event %d changes more than %d documents", ErrTooManyWrites, m.p.def.Name, e.Sequence, maxBatchWrites)
			}
		}
		if err != nil {
			if tx.failed != nil {
				err = tx.failed
			} else {
				err = &ApplyError{Projection: m.p.def.Name, Sequence: e.Sequence, Subject: e.Subject.String(), Err: err}
			}
			return m.cpSeq(after), err
		}
		last = e.Sequence
	}
	if last == m.cp.Sequence {
		return last, nil
	}
	if err := m.commit(ctx, tx, last); err != nil {
		return m.cpSeq(after), err
	}
	return last, nil
}

func (m *kvModel) cpSeq(def uint64) uint64 {
	if m.cp == nil {
		return def
	}
	return m.cp.Sequence
}

// commit writes the transaction's documents and the checkpoint seq as one
// atomic batch, every message expecting the revision it was computed from.
func (m *kvModel) commit(ctx context.Context, tx *KVTx, seq uint64) error {
	keys := make([]string, 0, len(tx.writes)+1)
	msgs := make([]*nats.Msg, 0, len(tx.writes)+1)
	for key, w := range tx.writes {
		msg := &nats.Msg{Subject: m.subject(key), Data: w.value, Header: nats.Header{}}
		if w.delete {
			msg.Header.Set("KV-Operation", "DEL")
		}
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(w.base, 10))
		keys = append(keys, key)
		msgs = append(msgs, msg)
	}
	cp := *m.cp
	cp.Sequence, cp.Updated = seq, time.Now().UTC()
	b, _ := json.Marshal(cp)
	cmsg := &nats.Msg{Subject: m.subject(CheckpointKey), Data: b, Header: nats.Header{}}
	cmsg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(m.cpRev, 10))
	msgs = append(msgs, cmsg)
	msgs[0].Header.Set(jetstream.ExpectedStreamHeader, "KV_"+m.bucket)
	first, err := publishAtomic(ctx, m.nc, msgs)
	if err != nil {
		m.invalidate()
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == 10164) {
			return fmt.Errorf("%w: %s: bucket %s: %w", ErrConflict, m.p.def.Name, m.bucket, err)
		}
		return fmt.Errorf("projections: %s: commit to bucket %s: %w", m.p.def.Name, m.bucket, err)
	}
	if len(m.cache) > maxDocCache {
		clear(m.cache)
	}
	for i, key := range keys {
		w := tx.writes[key]
		m.cache[key] = kvDoc{value: w.value, exists: !w.delete, rev: first + uint64(i)}
	}
	m.cp, m.cpRev = &cp, first+uint64(len(keys))
	return nil
}

// KVTx is the document accessor of one batch of a KV projection: reads
// see the batch's own writes, and every write is committed with the
// checkpoint, all or none.
type KVTx struct {
	m       *kvModel
	writes  map[string]*kvWrite
	journal []journalEntry
	failed  error
}

type kvWrite struct {
	value  []byte
	delete bool
	base   uint64 // the revision the write expects
}

type journalEntry struct {
	key  string
	prev *kvWrite
}

// Bucket returns the name of the bucket being written.
func (tx *KVTx) Bucket() string { return tx.m.bucket }

// Get returns a document's value, with ok false when it does not exist.
//
// Errors: [ErrInvalidProjection] for a bad key, and the server's.
func (tx *KVTx) Get(ctx context.Context, key string) (value []byte, ok bool, err error) {
	if err := ValidKey(key); err != nil {
		return nil, false, err
	}
	if w, found := tx.writes[key]; found {
		return w.value, !w.delete, nil
	}
	d, err := tx.doc(ctx, key)
	if err != nil {
		return nil, false, err
	}
	return d.value, d.exists, nil
}

func (tx *KVTx) doc(ctx context.Context, key string) (kvDoc, error) {
	if d, found := tx.m.cache[key]; found {
		return d, nil
	}
	d, err := tx.m.get(ctx, key)
	if err != nil {
		tx.failed = err
		return d, err
	}
	if len(tx.m.cache) > maxDocCache {
		clear(tx.m.cache)
	}
	tx.m.cache[key] = d
	return d, nil
}

// Put sets a document's value.
//
// Errors: [ErrInvalidProjection] for a bad key, and the server's (when
// the document's revision has to be read).
func (tx *KVTx) Put(ctx context.Context, key string, value []byte) error {
	return tx.write(ctx, key, &kvWrite{value: value})
}

// Delete deletes a document.
//
// Errors: as [KVTx.Put].
func (tx *KVTx) Delete(ctx context.Context, key string) error {
	return tx.write(ctx, key, &kvWrite{delete: true})
}

func (tx *KVTx) write(ctx context.Context, key string, w *kvWrite) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	prev := tx.writes[key]
	if prev != nil {
		w.base = prev.base
	} else {
		d, err := tx.doc(ctx, key)
		if err != nil {
			return err
		}
		w.base = d.rev
	}
	tx.journal = append(tx.journal, journalEntry{key: key, prev: prev})
	tx.writes[key] = w
	return nil
}

// undo reverts the writes journalled after mark.
func (tx *KVTx) undo(mark int) {
	for i := len(tx.journal) - 1; i >= mark; i-- {
		j := tx.journal[i]
		if j.prev == nil {
			delete(tx.writes, j.key)
		} else {
			tx.writes[j.key] = j.prev
		}
	}
	tx.journal = tx.journal[:mark]
}
