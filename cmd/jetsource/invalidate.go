package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
)

func (m *Main) newInvalidateCmd(g *globals) *cobra.Command {
	var seq uint64
	var reason, actor string
	var force bool
	cmd := &cobra.Command{
		Use:   "invalidate [TRANSACTION] [--seq SEQ] --reason TEXT [--actor NAME]",
		Short: "Mark a transaction as invalid without deleting its events",
		Long: `invalidate records that a transaction is invalid: it appends one event of
type jetsource.transaction.invalidated on the subject
jetsource.transactions.<transaction>.invalidated. The transaction's events stay
in the stream and in every audit read ("jetsource events" shows both), while
readers that skip invalidated transactions ("jetsource events
--skip-invalidated", projections configured to skip them) leave them out.

Name the transaction by its id, or with --seq by the sequence of any of its
events (an event appended on its own is a transaction named by its event id).
Invalidating a transaction twice is harmless: the first invalidation is kept
and reported again.

An id that no stored event carries, most often a typo, is refused with exit
status 1 and nothing is written (finding out reads the stream until the
transaction's first event). --force records the invalidation anyway, for
events that are yet to be imported.`,
		Example: `  jetsource invalidate 3f2a9c... --reason "imported from a broken export" --actor ops
  jetsource invalidate --seq 1042 --reason "duplicate order"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (seq != 0) {
				return usagef("name the transaction either by id or with --seq, not both or neither")
			}
			if reason == "" {
				return usagef("--reason is required: it tells readers of the audit trail why")
			}
			ctx := cmd.Context()
			c, err := m.connect(ctx, g)
			if err != nil {
				return err
			}
			defer c.Close()
			tx := ""
			var opts []jetsource.InvalidateOption
			if force {
				opts = append(opts, jetsource.AllowUnknownTransaction())
			}
			if len(args) == 1 {
				tx = args[0]
			} else {
				for e, err := range c.store.Read(ctx, jetsource.Query{FromSequence: seq, Limit: 1}) {
					if err != nil {
						return err
					}
					if e.Sequence != seq {
						break
					}
					tx = e.TransactionID
					if tx == "" {
						tx = e.ID
					}
				}
				if tx == "" {
					return fmt.Errorf("%w: no event at sequence %d", jetsource.ErrNotFound, seq)
				}
				opts = append(opts, jetsource.AllowUnknownTransaction()) // found it
			}
			ack, err := jetsource.Invalidate(ctx, c.store, jetsource.Invalidation{Transaction: tx, Reason: reason, Actor: actor}, opts...)
			if errors.Is(err, jetsource.ErrUnknownTransaction) {
				return fmt.Errorf("%w; nothing was written (check the id, name it with --seq SEQ, or record it anyway with --force)", err)
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				return json.NewEncoder(m.Stdout).Encode(struct {
					Transaction string `json:"transaction"`
					jetsource.Ack
				}{tx, ack})
			}
			if ack.Duplicate {
				fmt.Fprintf(m.Stdout, "transaction %s was already invalidated at sequence %d\n", tx, ack.Sequence)
				return nil
			}
			fmt.Fprintf(m.Stdout, "transaction %s invalidated at sequence %d\n", tx, ack.Sequence)
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&seq, "seq", 0, "invalidate the transaction of the event at this sequence")
	f.StringVar(&reason, "reason", "", "why the transaction is invalid (required)")
	f.StringVar(&actor, "actor", "", "who invalidates it (the event's actor)")
	f.BoolVar(&force, "force", false, "record the invalidation even if no stored event carries the transaction id")
	return cmd
}
