package migrate

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go/jetstream"
)

// indexMagic starts an index file; the digit is the format's version.
const indexMagic = "jetsource-surface-index 1\n"

// indexMeta says which stream and table an index file describes and up
// to where: every message of the table up to Last is in it, and the
// stream held Msgs messages when Last was its last sequence.
type indexMeta struct {
	Stream  string    `json:"stream"`
	Created time.Time `json:"created"`
	Filter  string    `json:"filter"`
	Last    uint64    `json:"last"`
	Msgs    uint64    `json:"msgs"`
}

// IndexFile returns the name of the index file of a table's surface in
// the directory of [WithIndex]: surface-STREAM-FILTER.idx, with the
// characters of the filter that are not letters, digits, '-' or '.' as
// '_'.
func IndexFile(dir, stream, filter string) string {
	return filepath.Join(dir, "surface-"+fileSafe(stream)+"-"+fileSafe(filter)+".idx")
}

func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// tableIndex is the index file of a table and its checkpoint.
type tableIndex struct {
	path string
	meta indexMeta
}

// indexedSurface returns the surface of a table from its index file,
// brought up to date from the stream: only the messages after its
// checkpoint are read. An index that is missing, unreadable, of another
// stream (another server's, or a stream deleted and created again), or
// that messages were removed from the stream since (a purge, a delete,
// limits) is built again from the whole table. The index is saved in the
// background when it changed; wait with w.saves.
func (w *writer) indexedSurface(ctx context.Context, p *plan) (*surface, *tableIndex, error) {
	name := w.r.store.Stream()
	info, err := w.streamInfo(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("the surface of %s: %w", p.filter, err)
	}
	ix := &tableIndex{path: IndexFile(w.r.cfg.indexDir, name, p.filter.String())}
	meta, s, err := loadIndex(ix.path)
	why := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = "created"
	case err != nil:
		why = fmt.Sprintf("rebuilt: %v", err)
	case meta.Stream != name || !meta.Created.Equal(info.Created) || meta.Filter != p.filter.String():
		why = "rebuilt: it was of another stream"
	case removed(meta, info):
		why = "rebuilt: messages were removed from the stream since it was saved"
	}
	if why != "" {
		s, meta = newSurface(), indexMeta{Stream: name, Created: info.Created, Filter: p.filter.String()}
		if w.r.cfg.onIndex != nil {
			w.r.cfg.onIndex(ix.path, why)
		}
	}
	ix.meta = meta
	changed, err := w.catchUp(ctx, p, s, ix, info)
	if err != nil {
		return nil, nil, err
	}
	if changed || why != "" {
		w.save(ix, s)
	}
	return s, ix, nil
}

func (w *writer) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	cctx, cancel := context.WithTimeout(ctx, w.r.cfg.timeout)
	defer cancel()
	st, err := w.r.cfg.js.Stream(cctx, w.r.store.Stream())
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", w.r.store.Stream(), err)
	}
	return st.CachedInfo(), nil
}

// removed reports whether messages were removed from the stream since
// the checkpoint: it holds fewer than the messages stored since.
func removed(meta indexMeta, info *jetstream.StreamInfo) bool {
	return int64(info.State.Msgs)-int64(meta.Msgs) != int64(info.State.LastSeq)-int64(meta.Last)
}

// save writes the index in the background; wait with w.saves.
func (w *writer) save(ix *tableIndex, s *surface) {
	meta := ix.meta
	w.saves.Go(func() {
		if err := saveIndex(ix.path, meta, s); err != nil && w.r.cfg.onIndex != nil {
			w.r.cfg.onIndex(ix.path, fmt.Sprintf("not saved: %v", err))
		}
	})
}

// catchUp applies to s the messages of the table stored after the
// index's checkpoint, up to the stream's last sequence in info, and moves
// the checkpoint there.
func (w *writer) catchUp(ctx context.Context, p *plan, s *surface, ix *tableIndex, info *jetstream.StreamInfo) (bool, error) {
	last0 := info.State.LastSeq
	if last0 <= ix.meta.Last {
		return false, nil
	}
	head, err := w.r.store.LastSequence(ctx, p.filter)
	if err != nil {
		return false, err
	}
	if head > ix.meta.Last {
		cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
		if ix.meta.Last > 0 {
			cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: ix.meta.Last + 1}
		}
		err := w.consume(ctx, p, cfg, func(m jetstream.Msg, seq uint64) bool {
			if seq > last0 {
				return true
			}
			s.apply(p, m.Subject(), seq, m.Headers(), m.Data(), true)
			return seq >= head
		})
		if err != nil {
			return false, fmt.Errorf("bring the surface index %s up to date: %w", ix.path, err)
		}
	}
	ix.meta.Last, ix.meta.Msgs = last0, info.State.Msgs
	return true, nil
}

// updateIndex brings the index of a table up to date after the run wrote
// to it, so that the next run has only others' events to read. When
// messages were removed meanwhile it is left as it was (the next run
// builds it again).
func (w *writer) updateIndex(ctx context.Context, tr *tableRun) error {
	if tr.ix == nil {
		return nil
	}
	w.saves.Wait() // the surface is saved no more
	info, err := w.streamInfo(ctx)
	if err != nil {
		return err
	}
	if removed(tr.ix.meta, info) {
		return nil
	}
	if tr.surf == nil {
		tr.surf = newSurface()
	}
	changed, err := w.catchUp(ctx, tr.p, tr.surf, tr.ix, info)
	if err != nil || !changed {
		return err
	}
	w.save(tr.ix, tr.surf)
	return nil
}

// Index file layout: indexMagic, the length and JSON of indexMeta, the
// number of entries, the entries (aggregate, sequence, flags, hash,
// state; strings as length and bytes, numbers as uvarints), and the
// CRC-32 (Castagnoli) of everything before it.
const (
	flagDeleted = 1 << iota
	flagState
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// saveIndex writes the index to a temporary file beside path and renames
// it over path, so that a reader never sees half a file and concurrent
// runs each leave a whole one.
func saveIndex(path string, meta indexMeta, s *surface) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	mb, _ := json.Marshal(meta)
	size := len(indexMagic) + len(mb) + 24
	for i := range s.ents {
		size += len(s.ents[i].agg) + len(s.ents[i].hash) + len(s.ents[i].state) + 24
	}
	b := make([]byte, 0, size)
	b = append(b, indexMagic...)
	b = appendBytes(b, mb)
	b = binary.AppendUvarint(b, uint64(len(s.ents)))
	for i := range s.ents {
		en := &s.ents[i]
		b = appendBytes(b, []byte(en.agg))
		b = binary.AppendUvarint(b, en.seq)
		var fl uint64
		if en.deleted {
			fl |= flagDeleted
		}
		if en.state != nil {
			fl |= flagState
		}
		b = binary.AppendUvarint(b, fl)
		b = appendBytes(b, []byte(en.hash))
		if en.state != nil {
			b = appendBytes(b, en.state)
		}
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errBadIndex = errors.New("not a valid surface index file")

// loadIndex reads an index file. The aggregates, hashes and states of
// its entries share the memory of the file's contents, which is never
// written after it is read: one allocation instead of two per entry.
func loadIndex(path string) (indexMeta, *surface, error) {
	var meta indexMeta
	b, err := os.ReadFile(path)
	if err != nil {
		return meta, nil, err
	}
	if len(b) < len(indexMagic)+4 || !bytes.HasPrefix(b, []byte(indexMagic)) {
		return meta, nil, errBadIndex
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return meta, nil, fmt.Errorf("%w: checksum mismatch", errBadIndex)
	}
	r := reader{b: body[len(indexMagic):]}
	if err := json.Unmarshal(r.bytes(), &meta); err != nil {
		return meta, nil, fmt.Errorf("%w: %v", errBadIndex, err)
	}
	n := r.uvarint()
	if r.bad || n > uint64(len(body)) {
		return meta, nil, errBadIndex
	}
	s := &surface{pos: make(map[string]int, n), ents: make([]entry, n), added: map[string]struct{}{}}
	for i := range s.ents {
		en := &s.ents[i]
		en.agg = r.str()
		en.seq = r.uvarint()
		fl := r.uvarint()
		en.deleted = fl&flagDeleted != 0
		en.hash = r.str()
		if fl&flagState != 0 {
			en.state = r.bytes()
		}
		if r.bad {
			return meta, nil, errBadIndex
		}
		s.pos[en.agg] = i
	}
	if r.bad || len(r.b) != 0 || len(s.pos) != len(s.ents) {
		return meta, nil, errBadIndex
	}
	return meta, s, nil
}

type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

// str reads bytes as a string sharing their memory: the reader's
// buffer must never be written to.
func (r *reader) str() string {
	b := r.bytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}
