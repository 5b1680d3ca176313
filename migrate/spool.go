package migrate

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// work is what a row asks the writer to do: an imported event (new) or a
// changed one (changed, against entry ent of the surface).
type work struct {
	kind kind
	prev uint64 // the sequence a new row's event is based on
	ent  int    // the surface entry of a changed row
	row  row
}

// spool keeps the work of the rows in a temporary file while every row
// is read and checked, so that a run with validation reads the rows once
// and still writes nothing when one is bad.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	n   int
	buf [binary.MaxVarintLen64]byte
}

func (s *spool) add(wk work) error {
	if s.f == nil {
		f, err := os.CreateTemp("", "jetsource-migrate-*.spool")
		if err != nil {
			return fmt.Errorf("spool the rows to write: %w", err)
		}
		s.f, s.w = f, bufio.NewWriterSize(f, 1<<20)
	}
	s.uvarint(uint64(wk.kind))
	s.uvarint(wk.prev)
	s.uvarint(uint64(wk.ent))
	s.uvarint(uint64(wk.row.num))
	s.str(wk.row.aggregate)
	s.str(wk.row.key)
	s.str(wk.row.hash)
	s.uvarint(uint64(len(wk.row.data)))
	s.w.Write(wk.row.data)
	s.n++
	return nil
}

func (s *spool) uvarint(v uint64) { s.w.Write(s.buf[:binary.PutUvarint(s.buf[:], v)]) }

func (s *spool) str(v string) {
	s.uvarint(uint64(len(v)))
	s.w.WriteString(v)
}

// each yields the spooled work in order; the rows' states are decoded
// from their data.
func (s *spool) each(fn func(work) error) error {
	if s.f == nil {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	r := &spoolReader{r: bufio.NewReaderSize(s.f, 1<<20)}
	for range s.n {
		var wk work
		wk.kind = kind(r.uvarint())
		wk.prev = r.uvarint()
		wk.ent = int(r.uvarint())
		wk.row.num = int64(r.uvarint())
		wk.row.aggregate = string(r.bytes())
		wk.row.key = string(r.bytes())
		wk.row.hash = string(r.bytes())
		wk.row.data = r.bytes()
		if r.err != nil {
			return fmt.Errorf("spool: %w", r.err)
		}
		if wk.kind == kindChanged {
			var err error
			if wk.row.state, err = decodeState(wk.row.data); err != nil {
				return err
			}
		}
		if err := fn(wk); err != nil {
			return err
		}
	}
	return nil
}

type spoolReader struct {
	r   *bufio.Reader
	err error
}

func (r *spoolReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(r.r)
	r.err = err
	return v
}

func (r *spoolReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	b := make([]byte, n)
	_, r.err = io.ReadFull(r.r, b)
	return b
}

// close removes the spool's file.
func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		s.f = nil
	}
}
