package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/subjects"
)

// flagsRoot is the subject root of flag change events:
// flags.<escaped name>.changed.
const flagsRoot = "flags"

// flagSubject is the subject of the events recording changes of a flag.
// The name is escaped into one token, so billing.v2 is flags.billing=2Ev2.changed.
func flagSubject(name string) (subjects.Subject, error) {
	return subjects.Join(flagsRoot, subjects.Escape(name), "changed")
}

// flagRecorder records flag changes as events in the store.
type flagRecorder struct {
	store  *jetstore.Store
	bucket string
	ack    jetsource.Ack // of the last record
}

var _ flags.Recorder = (*flagRecorder)(nil)

// Record appends the change as an event: subject flags.<name>.changed,
// type flags.set or flags.unset, id the change id, actor the change's.
func (r *flagRecorder) Record(ctx context.Context, c flags.Change) error {
	subj, err := flagSubject(c.Name)
	if err != nil {
		return err
	}
	data, err := json.Marshal(map[string]any{
		"name":            c.Name,
		"op":              c.Op,
		"value":           c.Value,
		"source":          c.Source,
		"previous":        c.Previous,
		"previous_source": c.PreviousSource,
		"bucket":          r.bucket,
	})
	if err != nil {
		return err
	}
	ack, err := r.store.Append(ctx, jetsource.Event{
		ID:      c.ID,
		Subject: subj,
		Type:    flagsRoot + "." + string(c.Op),
		Time:    c.Time,
		Actor:   c.Actor,
		Data:    data,
	})
	if err != nil {
		return err
	}
	r.ack = ack
	return nil
}

func (m *Main) newFlagsCmd(g *globals) *cobra.Command {
	var file, bucket, configFile string
	cmd := &cobra.Command{
		Use:   "flags list|set|unset",
		Short: "List and toggle feature flags",
		Long: `flags lists and toggles feature flags: named booleans that are on, off or
unset. A file (--file, YAML or JSON) gives each flag's default and
description:

  flags:
    new-checkout: true
    search.fuzzy:
      enabled: false
      description: fuzzy matching in the search box

A value set in the key-value bucket (--bucket, default jetsource_flags)
overrides the file, and reaches every watching process at once; "unset"
deletes it, and the file's default applies again. A flag neither sets is off.

Every set and unset is first recorded as an event on flags.<name>.changed
(type flags.set or flags.unset, with the actor) in the event stream, and
only then written to the bucket: no change takes effect unrecorded. The
stream must therefore capture flags.>.

When a flag file is given (--file, or flags.file of --config), "set" refuses
a flag the file does not declare and the bucket does not hold, most often a
typo, with exit status 2 and the closest declared name; nothing is recorded
or written. --force creates it anyway. Without a flag file any valid name
can be set.

--config FILE reads flags.file, flags.bucket, buckets.max_bytes and the
stream name from a configuration file (--file, --bucket and --stream
override it).

Flag names are 1 to 128 characters of A-Z a-z 0-9 _ . - (no leading or
trailing dot, no two dots in a row).`,
		Example: `  jetsource flags list --file flags.yaml
  jetsource flags set billing.v2 on --actor alice
  jetsource flags set join-default-group on --config testdata/example/config.yaml
  jetsource flags unset billing.v2 --actor alice
  jetsource flags list -o json`,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown flags command %q: use list, set or unset", args[0])
			}
			return usagef("flags needs a command: list, set or unset")
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&file, "file", "", "flag file with defaults and descriptions (YAML or JSON)")
	pf.StringVar(&bucket, "bucket", flags.DefaultBucket, "key-value bucket of the flag values")
	pf.StringVarP(&configFile, "config", "c", "", "configuration file whose flags section (file, bucket) to use")
	opts := &flagsOpts{file: &file, bucket: &bucket, config: &configFile, g: g}
	cmd.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if err := cmd.Root().PersistentPreRunE(cmd, args); err != nil {
			return err
		}
		return opts.load(cmd)
	}
	cmd.AddCommand(m.newFlagsListCmd(g, opts), m.newFlagsSetCmd(g, opts), m.newFlagsUnsetCmd(g, opts))
	return cmd
}

// flagsOpts are the flags of the flags command.
type flagsOpts struct {
	file, bucket, config *string
	g                    *globals
	// bucketCfg configures the bucket when set creates it.
	bucketCfg jetstream.KeyValueConfig
}

// load applies --config: its flag file, bucket, bucket limits and stream,
// unless given on the command line.
func (o *flagsOpts) load(cmd *cobra.Command) error {
	o.bucketCfg = jetstream.KeyValueConfig{Bucket: *o.bucket}
	if *o.config == "" {
		return nil
	}
	cfg, err := LoadConfig(*o.config)
	if err != nil {
		return exitCodeError{code: exitError, err: err}
	}
	fl := cmd.Flags()
	if !fl.Changed("file") {
		*o.file = cfg.Flags.File
	}
	if !fl.Changed("bucket") {
		*o.bucket = cfg.Flags.bucket()
	}
	if !fl.Changed("stream") {
		o.g.stream = cfg.Stream.Name
	}
	o.bucketCfg = cfg.bucketConfig(*o.bucket)
	return nil
}

// definitions loads the flag file, if one is given.
func (o *flagsOpts) definitions() (flags.Definitions, error) {
	if *o.file == "" {
		return flags.Definitions{}, nil
	}
	return flags.LoadFile(*o.file)
}

func (m *Main) newFlagsListCmd(g *globals, o *flagsOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the flags with their values and sources",
		Long: `list prints every flag that the file declares or the bucket sets: its value,
its source (kv: set in the bucket; file: the file's default; default: no
value anywhere, so off), who set it and its description. With -o json it
prints one JSON object per flag.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			defs, err := o.definitions()
			if err != nil {
				return err
			}
			nc, js, err := m.connectJS(g)
			if err != nil {
				return err
			}
			defer nc.Close()
			setOpts := []flags.Option{flags.WithDefinitions(defs), flags.WithTimeout(g.timeout)}
			kv, err := flags.OpenBucket(ctx, js, *o.bucket)
			switch {
			case errors.Is(err, flags.ErrNoBucket):
				fmt.Fprintf(m.Stderr, "no bucket %s yet: no flag is set; showing the file's defaults\n", *o.bucket)
			case err != nil:
				return err
			default:
				setOpts = append(setOpts, flags.WithBucket(kv))
			}
			set, err := flags.New(setOpts...)
			if err != nil {
				return err
			}
			if kv != nil {
				if err := set.Refresh(ctx); err != nil {
					return err
				}
			}
			return m.printFlags(g, set.List())
		},
	}
}

func (m *Main) printFlags(g *globals, list []flags.Flag) error {
	w := bufio.NewWriter(m.Stdout)
	if g.output == "json" {
		enc := json.NewEncoder(w)
		for _, f := range list {
			if err := enc.Encode(f); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVALUE\tSOURCE\tACTOR\tDESCRIPTION")
	for _, f := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, flags.ValueOf(f.Enabled), f.Source, f.Actor, f.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return w.Flush()
}

func (m *Main) newFlagsSetCmd(g *globals, o *flagsOpts) *cobra.Command {
	var actor string
	var force bool
	cmd := &cobra.Command{
		Use:   "set NAME on|off",
		Short: "Set a flag in the bucket (overrides the file)",
		Long: `set records the change as an event on flags.<name>.changed and then sets the
flag in the bucket, where it overrides the file's default for every process
that watches the bucket. The value is on or off (true/false and 1/0 work
too). Setting the value the bucket already holds changes nothing.

With a flag file (--file or --config), a flag the file does not declare and
the bucket does not hold is refused with exit status 2 and the closest
declared name, unless --force.

Exit status 3 means someone else changed the flag at the same moment: the
change was recorded but not written; run it again.`,
		Example: `  jetsource flags set billing.v2 on --actor alice`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := flags.ParseValue(args[1])
			if err != nil || v == flags.Unset {
				return usagef("flag value %q: want on or off (to unset a flag: jetsource flags unset %s)", args[1], args[0])
			}
			return m.changeFlag(cmd.Context(), g, o, args[0], flags.OpSet, v == flags.On, m.actorOrUser(actor), force)
		},
	}
	cmd.Flags().StringVar(&actor, "actor", "", "who makes the change (default: $USER)")
	cmd.Flags().BoolVar(&force, "force", false, "set a flag the flag file does not declare")
	return cmd
}

func (m *Main) newFlagsUnsetCmd(g *globals, o *flagsOpts) *cobra.Command {
	var actor string
	cmd := &cobra.Command{
		Use:   "unset NAME",
		Short: "Remove a flag from the bucket (the file's default applies again)",
		Long: `unset records the change as an event on flags.<name>.changed and then deletes
the flag's value from the bucket, so the file's default applies again (off
for a flag the file does not set). Unsetting a flag the bucket does not hold
changes nothing.`,
		Example: `  jetsource flags unset billing.v2 --actor alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.changeFlag(cmd.Context(), g, o, args[0], flags.OpUnset, false, m.actorOrUser(actor), false)
		},
	}
	cmd.Flags().StringVar(&actor, "actor", "", "who makes the change (default: $USER)")
	return cmd
}

func (m *Main) actorOrUser(actor string) string {
	if actor != "" {
		return actor
	}
	return m.Getenv("USER")
}

// changeFlag runs set and unset: check the arguments, record, write.
func (m *Main) changeFlag(ctx context.Context, g *globals, o *flagsOpts, name string, op flags.Op, on bool, actor string, force bool) error {
	if err := flags.ValidName(name); err != nil {
		return usageError{err}
	}
	writeOpts := []flags.WriteOption{flags.WithActor(actor)}
	if force {
		writeOpts = append(writeOpts, flags.AllowUndeclared())
	}
	if err := flags.ValidActor(actor); err != nil {
		return usageError{err}
	}
	subj, err := flagSubject(name)
	if err != nil {
		return usageError{err}
	}
	defs, err := o.definitions()
	if err != nil {
		return err
	}
	c, err := m.connect(ctx, g)
	if err != nil {
		return err
	}
	defer c.Close()
	js, err := jetstream.New(c.nc, jetstream.WithDefaultTimeout(g.timeout))
	if err != nil {
		return err
	}
	// Refuse before anything is written when the change cannot be recorded.
	if err := checkCaptures(ctx, js, g.stream, subj); err != nil {
		return err
	}
	var kv jetstream.KeyValue
	if op == flags.OpSet {
		kv, err = flags.EnsureBucket(ctx, js, o.bucketCfg)
	} else {
		kv, err = flags.OpenBucket(ctx, js, *o.bucket)
		if errors.Is(err, flags.ErrNoBucket) {
			return m.printChange(g, *o.bucket, flags.Change{Name: name, Op: op, Noop: true}, 0)
		}
	}
	if err != nil {
		return err
	}
	rec := &flagRecorder{store: c.store, bucket: *o.bucket}
	setOpts := []flags.Option{flags.WithBucket(kv), flags.WithDefinitions(defs), flags.WithRecorder(rec), flags.WithTimeout(g.timeout)}
	if *o.file != "" {
		setOpts = append(setOpts, flags.RequireDeclared())
	}
	set, err := flags.New(setOpts...)
	if err != nil {
		return err
	}
	var change flags.Change
	if op == flags.OpSet {
		change, err = set.Put(ctx, name, on, writeOpts...)
	} else {
		change, err = set.Unset(ctx, name, writeOpts...)
	}
	switch {
	case errors.Is(err, flags.ErrInvalidOption), errors.Is(err, flags.ErrInvalidName):
		return usageError{err}
	case errors.Is(err, flags.ErrUndeclared):
		return usageError{fmt.Errorf("%w (flag file %s); nothing was recorded or written; --force sets it anyway", err, *o.file)}
	case errors.Is(err, flags.ErrConflict):
		return exitCodeError{code: exitConflict, err: fmt.Errorf("%w; recorded as event %d but not applied: run it again", err, rec.ack.Sequence)}
	case errors.Is(err, flags.ErrNotApplied):
		return fmt.Errorf("%w; recorded as event %d", err, rec.ack.Sequence)
	case err != nil:
		return err
	}
	return m.printChange(g, *o.bucket, change, rec.ack.Sequence)
}

// checkCaptures fails when the stream does not capture the subject of
// the flag's change events.
func checkCaptures(ctx context.Context, js jetstream.JetStream, stream string, subj subjects.Subject) error {
	st, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w: %s", jetsource.ErrStreamNotFound, stream)
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	for _, s := range st.CachedInfo().Config.Subjects {
		if f, err := subjects.ParseFilter(s); err == nil && f.Match(subj) {
			return nil
		}
	}
	return fmt.Errorf("%w: the stream %s does not capture %s, so the change cannot be recorded; nothing was written. Add %q to stream.subjects in the serve configuration",
		jetsource.ErrStreamNotFound, stream, subj, flagsRoot+".>")
}

func (m *Main) printChange(g *globals, bucket string, c flags.Change, event uint64) error {
	if g.output == "json" {
		out := struct {
			flags.Change
			Bucket string `json:"bucket"`
			Event  uint64 `json:"event,omitempty"`
		}{c, bucket, event}
		m.writeJSON(out)
		return nil
	}
	switch {
	case c.Noop && c.Op == flags.OpSet:
		fmt.Fprintf(m.Stdout, "%s is already %s in bucket %s: nothing changed\n", c.Name, flags.ValueOf(c.Value), bucket)
	case c.Noop:
		fmt.Fprintf(m.Stdout, "%s is not set in bucket %s: nothing changed\n", c.Name, bucket)
	default:
		fmt.Fprintf(m.Stdout, "%s: %s (%s) -> %s (%s); recorded as event %d\n", c.Name,
			flags.ValueOf(c.Previous), c.PreviousSource, flags.ValueOf(c.Value), c.Source, event)
	}
	return nil
}

// connectJS connects a client command that needs JetStream but not the
// event stream.
func (m *Main) connectJS(g *globals) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(g.server, nats.Name("jetsource-cli"), nats.Timeout(g.timeout), nats.MaxReconnects(0))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: cannot connect to %s: %w", jetsource.ErrUnavailable, g.server, err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(g.timeout))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
