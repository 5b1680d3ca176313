package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subjects"
)

// Documents defines a projection that needs no code: every event folds
// into one JSON document per entity (the event's aggregate, users.A for
// users.A.renamed) as a JSON merge patch (RFC 7396, [MergePatch]) of the
// event's data. Events whose data is not JSON (by content type) and events
// without data leave the document's content as it is but still count as
// applied. Events whose data is JSON by content type but not a valid
// JSON object, and malformed messages, are skipped with a warning and
// counted ([ErrSkipEvent]).
type Documents struct {
	// Name identifies the projection (see [ValidName]).
	Name string
	// Filters select the events (none: every event).
	Filters []subjects.Filter
	// Delete names events (the last token of the subject, such as
	// "deleted") that delete the entity's document.
	Delete []string
}

func (d Documents) deletes(e jetsource.Event) bool {
	name := e.Name()
	for _, n := range d.Delete {
		if n == name {
			return true
		}
	}
	return false
}

// patchOf returns the merge patch an event carries, or nil.
func patchOf(e jetsource.Event) []byte {
	if len(e.Data) == 0 {
		return nil
	}
	ct := e.DataContentType
	if ct != "" && ct != "application/json" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" && mt != "text/json" && !strings.HasSuffix(mt, "+json") {
			return nil
		}
	}
	return e.Data
}

// objectPatch returns the merge patch an event carries (nil: none), or an
// error matching [ErrSkipEvent] when its JSON data is not a valid JSON
// object: such an event is skipped rather than replacing the document
// or stopping the projection.
func objectPatch(e jetsource.Event) ([]byte, error) {
	p := patchOf(e)
	if p == nil {
		return nil, nil
	}
	var v any
	if err := decodeJSON(p, &v); err != nil {
		return nil, fmt.Errorf("%w: data is not valid JSON: %w", ErrSkipEvent, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("%w: data is JSON but no object, no merge patch of a document", ErrSkipEvent)
	}
	return p, nil
}

// EntityKey returns the KV key of an event's entity: its aggregate, each
// token in the escaped form of [subjects.Escape] (tokens already in that
// form stay as they are), so users.A.renamed has the key users.A.
func EntityKey(e jetsource.Event) string {
	agg := e.Aggregate()
	toks := agg.Tokens()
	for i, t := range toks {
		if _, err := subjects.Unescape(t); err != nil {
			toks[i] = subjects.Escape(t)
		}
	}
	return strings.Join(toks, ".")
}

// SQL returns the definition of the documents projection into an SQL
// table with the columns entity (the aggregate subject, primary key),
// document (JSON text), sequence (of the last event applied to the
// document) and updated (its stored time, RFC 3339 UTC). A report engine
// reads it as a plain table; SQLite's json_extract reaches into the
// documents. table defaults to the projection name.
func (d Documents) SQL(table, location string) SQL {
	if table == "" {
		table = d.Name
	}
	return SQL{
		Name: d.Name, Filters: d.Filters, Tables: []string{table}, Location: location,
		Setup: func(ctx context.Context, tx *SQLTx) error {
			_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table(table)+` (
	entity TEXT PRIMARY KEY,
	document TEXT NOT NULL,
	sequence INTEGER NOT NULL,
	updated TEXT NOT NULL)`)
			return err
		},
		Apply: func(ctx context.Context, tx *SQLTx, e jetsource.Event) error {
			entity := e.Aggregate().String()
			if d.deletes(e) {
				st, err := tx.Prepared(ctx, `DELETE FROM `+tx.Table(table)+` WHERE entity = ?`)
				if err != nil {
					return err
				}
				_, err = st.ExecContext(ctx, entity)
				return err
			}
			sel, err := tx.Prepared(ctx, `SELECT document FROM `+tx.Table(table)+` WHERE entity = ?`)
			if err != nil {
				return err
			}
			var doc []byte
			if err := sel.QueryRowContext(ctx, entity).Scan(&doc); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if doc == nil {
				doc = []byte("{}")
			}
			if p, err := objectPatch(e); err != nil {
				return fmt.Errorf("document %s: %w", entity, err)
			} else if p != nil {
				if doc, err = MergePatch(doc, p); err != nil {
					return err
				}
			}
			up, err := tx.Prepared(ctx, `INSERT INTO `+tx.Table(table)+` (entity, document, sequence, updated) VALUES (?, ?, ?, ?)
ON CONFLICT (entity) DO UPDATE SET document = excluded.document, sequence = excluded.sequence, updated = excluded.updated`)
			if err != nil {
				return err
			}
			_, err = up.ExecContext(ctx, entity, string(doc), e.Sequence, e.Stored.UTC().Format(time.RFC3339Nano))
			return err
		},
	}
}

// KV returns the definition of the documents projection into a KV bucket:
// one key per entity ([EntityKey]) whose value is the JSON document. The
// bucket defaults to the projection name.
func (d Documents) KV(bucket string) KV {
	return KV{
		Name: d.Name, Filters: d.Filters, Bucket: bucket,
		Apply: func(ctx context.Context, tx *KVTx, e jetsource.Event) error {
			key := EntityKey(e)
			if d.deletes(e) {
				return tx.Delete(ctx, key)
			}
			doc, ok, err := tx.Get(ctx, key)
			if err != nil {
				return err
			}
			if !ok {
				doc = []byte("{}")
			}
			if p, err := objectPatch(e); err != nil {
				return fmt.Errorf("document %s: %w", key, err)
			} else if p != nil {
				if doc, err = MergePatch(doc, p); err != nil {
					return fmt.Errorf("document %s: %w", key, err)
				}
			}
			return tx.Put(ctx, key, doc)
		},
	}
}
