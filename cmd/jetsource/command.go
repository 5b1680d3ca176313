package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
)

// exitRejected is the exit code of a rejected command.
const exitRejected = 4

func (m *Main) newCommandCmd(g *globals) *cobra.Command {
	var actor, id, correlation, causation, prefix string
	cmd := &cobra.Command{
		Use:   "command NAME [DATA|-]",
		Short: "Send a command to the command workers and print its result",
		Long: `command sends the command NAME with the JSON payload DATA ("-" reads it from
standard input; without DATA the command has no payload) over NATS
request/reply on the subject cmd.NAME, where a queue group of command workers
serves it, and prints the result envelope.

The table output is the status on the first line, then the sequences of the
stored events (accepted) or one reason per line (rejected). With --output json
it is the envelope: {"status":"accepted","sequences":[..]},
{"status":"rejected","reasons":[..]}, {"status":"conflict",...} or
{"status":"error","error":"..."}.

--id sets the command id, the idempotency key (default: random): sending the
same command again with the same id (after a timeout, say) does not execute
it twice; the original sequences are printed.

Exit codes: 0 accepted, 4 rejected, 3 conflict (the events it decided on kept
changing), 1 error (also when no worker serves NAME), 2 usage error.`,
		Example: `  jetsource command InsertUser '{"company":"acme","id":"u1","name":"Homer","username":"homer"}' --actor admin
  jetsource command SetAPIKey '{"company":"acme","id":"u1","key":"d0a"}' --id req-42 -o json
  echo '{"company":"acme","group":"g1","user":"u1"}' | jetsource command AddUserToGroup -`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := handlers.ValidName(name); err != nil {
				return usageError{err}
			}
			var payload any
			if len(args) == 2 {
				data := []byte(args[1])
				if args[1] == "-" {
					var err error
					if data, err = io.ReadAll(cmd.InOrStdin()); err != nil {
						return fmt.Errorf("read data from standard input: %w", err)
					}
				}
				payload = data
			}
			opts := []handlers.SendOption{handlers.WithActor(actor), handlers.WithCorrelationID(correlation), handlers.WithCausationID(causation)}
			if id != "" {
				opts = append(opts, handlers.WithCommandID(id))
			}
			nc, err := nats.Connect(g.server, nats.Name("jetsource-cli"), nats.Timeout(g.timeout), nats.MaxReconnects(0))
			if err != nil {
				return fmt.Errorf("%w: cannot connect to %s: %w", jetsource.ErrUnavailable, g.server, err)
			}
			defer nc.Close()
			c, err := handlers.NewClient(nc, handlers.WithPrefix(prefix), handlers.WithRequestTimeout(g.timeout))
			if err != nil {
				return usageError{err}
			}
			res, err := c.Send(cmd.Context(), name, payload, opts...)
			switch {
			case errors.Is(err, handlers.ErrInvalidCommand):
				return usageError{err}
			case errors.Is(err, handlers.ErrUnknownCommand):
				// exitCodeError: the message must not pass for a usage error.
				return exitCodeError{code: exitError, err: fmt.Errorf("unknown command %s: no command worker serves %s.%s (is a worker running with this command registered?)", name, prefix, name)}
			case err != nil:
				return exitCodeError{code: exitError, err: err}
			}
			return m.printResult(g, res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&actor, "actor", "", "who issues the command (the actor of its events)")
	f.StringVar(&id, "id", "", "command id, the idempotency key (default: random)")
	f.StringVar(&correlation, "correlation-id", "", "conversation the command belongs to (default: the command id)")
	f.StringVar(&causation, "causation-id", "", "id of the event or command that caused this command")
	f.StringVar(&prefix, "prefix", handlers.DefaultPrefix, "subject prefix of commands")
	return cmd
}

// printResult prints a command's result and returns the error carrying its
// exit code.
func (m *Main) printResult(g *globals, res handlers.Result) error {
	if g.output == "json" {
		m.writeJSON(res)
	} else {
		fmt.Fprintln(m.Stdout, res.Status)
		switch res.Status {
		case handlers.StatusAccepted:
			if len(res.Sequences) > 0 {
				seqs := make([]string, len(res.Sequences))
				for i, s := range res.Sequences {
					seqs[i] = fmt.Sprint(s)
				}
				fmt.Fprintln(m.Stdout, "sequences:", strings.Join(seqs, " "))
			}
		case handlers.StatusRejected:
			for _, r := range res.Reasons {
				fmt.Fprintln(m.Stdout, "reason:", r)
			}
		case handlers.StatusConflict:
			fmt.Fprintln(m.Stdout, "attempts:", res.Attempts)
		}
	}
	switch res.Status {
	case handlers.StatusAccepted:
		if res.Duplicate {
			fmt.Fprintf(m.Stderr, "duplicate: command %s was executed before; nothing written\n", res.ID)
		}
		return nil
	case handlers.StatusRejected:
		fmt.Fprintf(m.Stderr, "rejected: %s\n", strings.Join(res.Reasons, "; "))
		return exitCodeError{code: exitRejected}
	case handlers.StatusConflict:
		fmt.Fprintf(m.Stderr, "conflict: command %s: %d attempts lost the race: %s\n", res.Command, res.Attempts, res.Error)
		return exitCodeError{code: exitConflict, err: res.Err()}
	default:
		return exitCodeError{code: exitError, err: res.Err()}
	}
}
