package migrate

import (
	"bufio"
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

// indexedSurface returns the surface of a table from its index file,
// brought up to date from the stream: only the messages after its
// checkpoint are read. An index that is missing, unreadable, of another
// stream (another server's, or a stream deleted and created again), or
// that messages were removed from the stream since (a purge, a delete,
// limits) is built again from the whole table. The index is saved in the
// background when it changed; wait with w.saves.
func (w *writer) indexedSurface(ctx context.Context, p *plan) (*surface, error) {
	js, name := w.r.cfg.js, w.r.store.Stream()
	cctx, cancel := context.WithTimeout(ctx, w.r.cfg.timeout)
	st, err := js.Stream(cctx, name)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("the surface of %s: stream %s: %w", p.filter, name, err)
	}
	info := st.CachedInfo()
	path := IndexFile(w.r.cfg.indexDir, name, p.filter.String())
	meta, s, err := loadIndex(path)
	why := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = "created"
	case err != nil:
		why = fmt.Sprintf("rebuilt: %v", err)
	case meta.Stream != name || !meta.Created.Equal(info.Created) || meta.Filter != p.filter.String():
		why = "rebuilt: it was of another stream"
	case int64(info.State.Msgs)-int64(meta.Msgs) != int64(info.State.LastSeq)-int64(meta.Last):
		why = "rebuilt: messages were removed from the stream since it was saved"
	}
	if why != "" {
		s, meta = newSurface(), indexMeta{Stream: name, Created: info.Created, Filter: p.filter.String()}
		if w.r.cfg.onIndex != nil {
			w.r.cfg.onIndex(path, why)
		}
	}
	changed := why != ""
	last0 := info.State.LastSeq
	if last0 > meta.Last {
		head, err := w.r.store.LastSequence(ctx, p.filter)
		if err != nil {
			return nil, err
		}
		if head > meta.Last {
			cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
			if meta.Last > 0 {
				cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: meta.Last + 1}
			}
			err := w.consume(ctx, p, cfg, func(m jetstream.Msg, seq uint64) bool {
				if seq > last0 {
					return true
				}
				s.apply(p, m.Subject(), seq, m.Headers(), m.Data(), true)
				return seq >= head
			})
			if err != nil {
				return nil, fmt.Errorf("bring the surface index %s up to date: %w", path, err)
			}
		}
		meta.Last, meta.Msgs, changed = last0, info.State.Msgs, true
	}
	if changed {
		w.saves.Go(func() {
			if err := saveIndex(path, meta, s); err != nil && w.r.cfg.onIndex != nil {
				w.r.cfg.onIndex(path, fmt.Sprintf("not saved: %v", err))
			}
		})
	}
	return s, nil
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
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(f, 1<<20)
	out := &multi{w: bw, crc: crc}
	mb, _ := json.Marshal(meta)
	out.write([]byte(indexMagic))
	out.bytes(mb)
	out.uvarint(uint64(len(s.ents)))
	for i := range s.ents {
		en := &s.ents[i]
		out.bytes([]byte(en.agg))
		out.uvarint(en.seq)
		var fl uint64
		if en.deleted {
			fl |= flagDeleted
		}
		if en.state != nil {
			fl |= flagState
		}
		out.uvarint(fl)
		out.bytes([]byte(en.hash))
		if en.state != nil {
			out.bytes(en.state)
		}
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	if _, err := bw.Write(sum[:]); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

type multi struct {
	w   *bufio.Writer
	crc interface{ Write([]byte) (int, error) }
	buf [binary.MaxVarintLen64]byte
}

func (m *multi) write(b []byte) {
	m.w.Write(b)
	m.crc.Write(b)
}

func (m *multi) uvarint(v uint64) { m.write(m.buf[:binary.PutUvarint(m.buf[:], v)]) }

func (m *multi) bytes(b []byte) {
	m.uvarint(uint64(len(b)))
	m.write(b)
}

var errBadIndex = errors.New("not a valid surface index file")

// loadIndex reads an index file. The states of its entries share the
// memory of the file's contents.
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
		en.agg = string(r.bytes())
		en.seq = r.uvarint()
		fl := r.uvarint()
		en.deleted = fl&flagDeleted != 0
		if h := r.bytes(); len(h) > 0 {
			en.hash = string(h)
		}
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
