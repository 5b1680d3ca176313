// Package migrate turns the rows of a CRUD database or of CSV files into
// events, and keeps re-running that against a live upstream so that a
// system which overwrites its rows becomes a versioned history.
//
// # Mapping
//
// A [Mapping] (read with [LoadMapping] from YAML) names a [Source] and, for
// each table, the subject template of its rows and the columns that become
// the event data:
//
//	source: sqlite:./shop.db          # or postgres://user@host/db, or csv:./dir
//	tables:
//	  - table: customers              # a table, or a CSV file name without .csv
//	    subject: customers.{id}       # key columns in braces, escaped as subject tokens
//	    data: [name, email]           # columns that become the event data (default: all but the key)
//	    type: imported                # event name of a first import (default imported)
//	    transforms:                   # optional, applied in order to a column's value
//	      email: [trim, lower]
//
// The template names the aggregate of a row (customers.42); the events of
// the row are stored under it: customers.42.imported, customers.42.changed,
// customers.42.deleted.
//
// # Rows become events
//
// A row's data is a JSON object of its data columns; NULL columns are left
// out, so the data is the row's state as JSON merge patch (RFC 7396) folds
// it. Every event the package writes carries the extension attribute
// statehash: a hash of the aggregate's state after the event. Its id is
// derived from the table, the aggregate, the event name, the sequence the
// change is based on and that hash, so writing the same change twice
// stores it once.
//
// # Diffing against the surface
//
// [Runner.Run] reads the surface of a table (the latest event of every
// subject under its template, [jetsource.Store.Latest]) and compares each
// row with it:
//
//   - a row whose aggregate has no event (or whose latest is deleted) is
//     new: an imported event with the whole row;
//   - a row whose state hash equals the latest event's is unchanged and
//     writes nothing;
//   - otherwise the aggregate's state is folded ([state.Load]) and a
//     changed event with a JSON merge patch of the difference is written;
//   - with [Sync], an aggregate of the surface whose row is gone gets a
//     deleted event.
//
// Every write is conditional on the aggregate's last sequence as read, so a
// concurrent writer cannot make the run write a stale patch: an append that
// meets a conflict is decided again once against a fresh fold of its
// aggregate (a second conflict fails the run). On a table with no events
// yet the surface is not read at all and memory stays constant however
// many rows there are; otherwise the run holds one small entry per
// aggregate of the table.
//
// # The surface index
//
// With [WithIndex] the surface of each table is kept in a local file
// ([IndexFile]): for each aggregate the sequence, statehash and state of
// its latest event, with a checkpoint (the stream's last sequence it has
// read up to). A run loads it and reads from the stream only the messages
// stored after the checkpoint, and after its writes it reads its own
// events back into it, so a sync of a table that changed little reads
// little from NATS; a changed row whose state the index knows needs no
// fold. The index stays exactly right: it is built again from the stream
// when it is missing or damaged, when it is of another stream (the
// stream's creation time differs: another server, or the stream deleted
// and created again) or when messages were removed from the stream since
// its checkpoint (a purge, a delete, limits such as MaxAge: the stream
// then holds fewer messages than it stored); and a stale index can only
// cause a conflict, which a fresh fold resolves as above. Deleting the
// file is always safe.
//
// # Bad input
//
// Unknown tables or columns are found by [Runner.Check] before a row is
// read. A row whose key is NULL, or with a value that does not map to JSON
// (a BLOB, NaN), fails with an error that names the table and the row
// ([*RowError]). With [WithValidation] (the default) every row of every
// table is read, converted and compared before anything is written (what
// to write waits in a temporary file), so a bad row writes nothing
// ([ErrBadRows]); the rows are read once. A source
// that fails mid-run stops the run with [ErrSource]; the events written
// before it are whole events, and running again resumes: rows already
// stored are unchanged.
package migrate
