package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// normalizeRoot returns the stream subject for a root given on the
// command line: "bookings" and "bookings.>" both capture bookings.>;
// a filter with wildcards is taken as it is.
func normalizeRoot(s string) (string, error) {
	s = strings.TrimSpace(s)
	f, err := subjects.ParseFilter(s)
	if err != nil {
		return "", err
	}
	if toks := f.Tokens(); !slices.Contains(toks, "*") && toks[len(toks)-1] != ">" {
		return s + ".>", nil
	}
	return f.String(), nil
}

// checkRoot refuses a stream subject that would capture what jetsource
// must never store: the server's own subjects ($JS, $KV, $O, $SYS, any
// $-subject), reply inboxes (_INBOX) and the command bus (prefix).
func checkRoot(root, prefix string) error {
	f, err := subjects.ParseFilter(root)
	if err != nil {
		return err
	}
	first := f.Tokens()[0]
	switch {
	case strings.HasPrefix(first, "$"):
		return fmt.Errorf("%w: %q would capture the server's own subjects ($JS, $KV, $O, $SYS)", jetsource.ErrForbiddenSubject, root)
	case first == "_INBOX":
		return fmt.Errorf("%w: %q would capture reply inboxes", jetsource.ErrForbiddenSubject, root)
	}
	if prefix == "" {
		prefix = handlers.DefaultPrefix
	}
	if bus, err := subjects.ParseFilter(prefix + ".>"); err == nil && f.Overlaps(bus) {
		return fmt.Errorf("%w: %q overlaps the command bus %s.> (commands are requests, not events)", jetsource.ErrForbiddenSubject, root, prefix)
	}
	return nil
}

// addRoots adds roots (each normalized) to subjs, skipping those present.
func addRoots(subjs []string, roots []string) ([]string, error) {
	out := slices.Clone(subjs)
	for _, r := range roots {
		if strings.TrimSpace(r) == "" {
			continue
		}
		n, err := normalizeRoot(r)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// streamInfo is the output of "stream info".
type streamInfo struct {
	Name        string    `json:"name"`
	Subjects    []string  `json:"subjects"`
	Messages    uint64    `json:"messages"`
	Bytes       uint64    `json:"bytes"`
	FirstSeq    uint64    `json:"first_seq"`
	LastSeq     uint64    `json:"last_seq"`
	MaxBytes    int64     `json:"max_bytes"`
	MaxMsgSize  int32     `json:"max_msg_size"`
	Discard     string    `json:"discard"`
	Replicas    int       `json:"replicas"`
	Duplicates  string    `json:"duplicates"`
	Storage     string    `json:"storage"`
	AllowDelete bool      `json:"allow_delete"`
	Created     time.Time `json:"created"`
}

func (m *Main) newStreamCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stream info|add-subject|remove-subject",
		Short: "Show the event stream and change the subjects it captures",
		Long: `stream shows the event stream (--stream, default EVENTS) and changes the
subject roots it captures, on a running server (--server or NATS_URL).

An event can only be appended to a subject the stream captures. The default
stream of "jetsource serve" captures users.>, groups.>, companies.>, flags.>
and jetsource.transactions.>; add your own roots here, with
"serve --subjects", or with stream.subjects in the configuration file.
A root added here is kept when serve restarts.`,
		Example: `  jetsource stream info
  jetsource stream add-subject bookings.>
  jetsource stream remove-subject bookings.>`,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown stream command %q: use info, add-subject or remove-subject", args[0])
			}
			return usagef("stream needs a command: info, add-subject or remove-subject")
		},
	}
	cmd.AddCommand(m.newStreamInfoCmd(g), m.newStreamSubjectCmd(g, true), m.newStreamSubjectCmd(g, false))
	return cmd
}

func (m *Main) newStreamInfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Print the stream's subjects, size and limits",
		Long: `info prints the event stream's name, the subjects it captures, how many
messages and bytes it holds, its first and last sequence and its limits
(max_bytes: the size at which it refuses new events, "none" without one;
the largest event; replicas; the duplicate window). -o json prints one
JSON object.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			nc, js, err := m.connectJS(g)
			if err != nil {
				return err
			}
			defer nc.Close()
			info, err := streamInfoOf(ctx, js, g.stream)
			if err != nil {
				return err
			}
			if g.output == "json" {
				m.writeJSON(info)
				return nil
			}
			limit := "none"
			if info.MaxBytes > 0 {
				limit = fmt.Sprintf("%s (%d%% used)", formatSize(info.MaxBytes), info.Bytes*100/uint64(info.MaxBytes))
			}
			msgSize := "server maximum"
			if info.MaxMsgSize > 0 {
				msgSize = formatSize(int64(info.MaxMsgSize))
			}
			tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
			for _, row := range [][2]string{
				{"name", info.Name},
				{"subjects", strings.Join(info.Subjects, " ")},
				{"messages", fmt.Sprint(info.Messages)},
				{"bytes", fmt.Sprintf("%d (%s)", info.Bytes, formatSize(int64(info.Bytes)))},
				{"sequences", fmt.Sprintf("%d..%d", info.FirstSeq, info.LastSeq)},
				{"max bytes", limit},
				{"max event size", msgSize},
				{"replicas", fmt.Sprint(info.Replicas)},
				{"duplicate window", info.Duplicates},
				{"storage", info.Storage},
				{"deletes", map[bool]string{true: "allowed", false: "denied"}[info.AllowDelete]},
			} {
				fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
			}
			return tw.Flush()
		},
	}
}

// streamInfoOf reads the stream's configuration and state.
func streamInfoOf(ctx context.Context, js jetstream.JetStream, name string) (streamInfo, error) {
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return streamInfo{}, fmt.Errorf("%w: %s", jetsource.ErrStreamNotFound, name)
	}
	if err != nil {
		return streamInfo{}, fmt.Errorf("stream %s: %w", name, err)
	}
	i := st.CachedInfo()
	c := i.Config
	return streamInfo{
		Name: c.Name, Subjects: c.Subjects, Messages: i.State.Msgs, Bytes: i.State.Bytes,
		FirstSeq: i.State.FirstSeq, LastSeq: i.State.LastSeq,
		MaxBytes: max(c.MaxBytes, 0), MaxMsgSize: max(c.MaxMsgSize, 0), Discard: c.Discard.String(),
		Replicas: c.Replicas, Duplicates: c.Duplicates.String(), Storage: c.Storage.String(),
		AllowDelete: !c.DenyDelete, Created: i.Created,
	}, nil
}

func (m *Main) newStreamSubjectCmd(g *globals, add bool) *cobra.Command {
	var prefix string
	use, short, long := "add-subject ROOT...", "Make the stream capture more subject roots",
		`add-subject adds subject roots to the stream: "bookings" or "bookings.>"
captures every subject under bookings. The server's own subjects ($JS, $KV,
$O, $SYS), reply inboxes (_INBOX) and the command bus (--prefix, default
cmd) are refused, as is a root that overlaps one the stream captures or
that another stream captures. "jetsource serve" keeps a root added here
when it restarts.`
	if !add {
		use, short, long = "remove-subject ROOT...", "Stop the stream from capturing subject roots",
			`remove-subject removes subject roots from the stream. The events already
stored under them stay (and are read as before); new events on those
subjects are refused. The last root cannot be removed.`
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			roots := make([]string, 0, len(args))
			for _, a := range args {
				r, err := normalizeRoot(a)
				if err != nil {
					return usageError{err}
				}
				if add {
					if err := checkRoot(r, prefix); err != nil {
						return usageError{err}
					}
				}
				roots = append(roots, r)
			}
			nc, js, err := m.connectJS(g)
			if err != nil {
				return err
			}
			defer nc.Close()
			st, err := js.Stream(ctx, g.stream)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("%w: %s", jetsource.ErrStreamNotFound, g.stream)
			}
			if err != nil {
				return fmt.Errorf("stream %s: %w", g.stream, err)
			}
			cfg := st.CachedInfo().Config
			// The stream's own guard subject is jetsource's, not a root
			// to add or remove: it is kept as it is.
			var internal []string
			before := slices.DeleteFunc(slices.Clone(cfg.Subjects), func(s string) bool {
				if jetsource.InternalSubject(s) {
					internal = append(internal, s)
					return true
				}
				return false
			})
			var after []string
			if add {
				after, _ = addRoots(before, roots)
				check := jetstore.StreamConfig{Name: cfg.Name, Subjects: after, Replicas: max(cfg.Replicas, 1)}
				if err := check.Validate(); err != nil {
					return usageError{fmt.Errorf("stream %s captures %s: %w", cfg.Name, strings.Join(before, " "), err)}
				}
			} else {
				for _, r := range roots {
					if !slices.Contains(before, r) {
						return usagef("stream %s does not capture %s (it captures %s)", cfg.Name, r, strings.Join(before, " "))
					}
				}
				after = slices.DeleteFunc(slices.Clone(before), func(s string) bool { return slices.Contains(roots, s) })
				if len(after) == 0 {
					return usagef("stream %s must capture at least one subject", cfg.Name)
				}
			}
			changed := !slices.Equal(before, after)
			if changed {
				cfg.Subjects = append(slices.Clone(after), internal...)
				if _, err := js.UpdateStream(ctx, cfg); err != nil {
					return fmt.Errorf("update stream %s: %w", cfg.Name, err)
				}
			}
			if g.output == "json" {
				m.writeJSON(struct {
					Stream   string   `json:"stream"`
					Subjects []string `json:"subjects"`
					Changed  bool     `json:"changed"`
				}{cfg.Name, after, changed})
				return nil
			}
			if !changed {
				fmt.Fprintf(m.Stdout, "stream %s already captures %s: nothing changed\n", cfg.Name, strings.Join(roots, " "))
				return nil
			}
			fmt.Fprintf(m.Stdout, "stream %s now captures %s\n", cfg.Name, strings.Join(after, " "))
			return nil
		},
	}
	if add {
		cmd.Flags().StringVar(&prefix, "prefix", handlers.DefaultPrefix, "subject prefix of the command bus (refused as a root)")
	}
	return cmd
}
