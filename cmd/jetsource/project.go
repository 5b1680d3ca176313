package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

// defaultProjectionDB is the SQLite file of projections that name none,
// next to the configuration file.
const defaultProjectionDB = "projections.db"

func (m *Main) newProjectCmd(g *globals) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "project [--config FILE]",
		Short: "Run the configured projections until interrupted",
		Long: `project keeps the read models of the configuration file's projections
section up to date: each projection reads the events matching its filters
from its checkpoint on and folds them into one JSON document per entity (the
event's aggregate, users.A for users.A.renamed) by JSON merge patch, in an
SQLite table (columns entity, document, sequence, updated) or a NATS KV
bucket. Each batch of events commits together with the checkpoint, so a
crash never loses or doubles an event. It runs until interrupted (SIGINT or
SIGTERM) and then finishes the transaction under way.

  projections:
    - name: users
      filters: ["users.>"]
      read_model: sqlite        # or kv
      database: ./read.db       # sqlite: the file (default projections.db)
      table: users              # sqlite: the table (default: the name)
      delete: [deleted]         # events that delete the document

"jetsource serve --config FILE" runs the same projections next to the server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := m.projectionConfig(cmd, g, configFile)
			if err != nil {
				return err
			}
			log := m.logger(g.logLvl, cfg.Log.Format)
			ctx := cmd.Context()
			nc, store, err := m.projectionClient(ctx, g, log)
			if err != nil {
				return err
			}
			defer nc.Close()
			js, _ := jetstream.New(nc, jetstream.WithDefaultTimeout(g.timeout))
			set, err := openProjections(ctx, cfg, js, false)
			if err != nil {
				return err
			}
			defer set.Close()
			r, err := projections.NewRunner(store, set.projs, projections.WithLogger(log))
			if err != nil {
				return err
			}
			log.Info("running projections", "count", len(set.projs), "stream", g.stream, "server", g.server)
			err = r.Run(ctx)
			log.Info("projections stopped")
			return err
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "YAML configuration file with a projections section (required)")
	return cmd
}

// projectionConfig loads the configuration of the projection commands: the
// file is required, and its stream name applies unless --stream is given.
func (m *Main) projectionConfig(cmd *cobra.Command, g *globals, file string) (Config, error) {
	if file == "" {
		return Config{}, usagef("--config FILE is required: the projections are configured there")
	}
	cfg, err := LoadConfig(file)
	if err != nil {
		return cfg, err
	}
	if len(cfg.Projections) == 0 {
		return cfg, fmt.Errorf("config %s: no projections configured (add a projections: section)", file)
	}
	if !cmd.Flags().Changed("stream") {
		g.stream = cfg.Stream.Name
	}
	if !cmd.Flags().Changed("log-level") {
		g.logLvl = cfg.Log.Level
	}
	return cfg, nil
}

// projectionClient connects for a long-running projection command: unlike
// the one-shot commands it reconnects for ever.
func (m *Main) projectionClient(ctx context.Context, g *globals, log *slog.Logger) (*nats.Conn, *jetstore.Store, error) {
	nc, err := nats.Connect(g.server, nats.Name("jetsource-project"), nats.Timeout(g.timeout),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("reconnected") }))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: cannot connect to %s: %w", jetsource.ErrUnavailable, g.server, err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(g.timeout))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	st, err := jetstore.New(ctx, js, g.stream, jetstore.WithTimeout(g.timeout))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, st, nil
}

// projectionSet is the projections of a configuration and the databases
// they opened.
type projectionSet struct {
	projs []projections.Projection
	dbs   map[string]*sql.DB
}

func (s *projectionSet) Close() {
	for _, db := range s.dbs {
		db.Close()
	}
}

func (s *projectionSet) byName(name string) (projections.Projection, error) {
	var names []string
	for _, p := range s.projs {
		if p.Name() == name {
			return p, nil
		}
		names = append(names, p.Name())
	}
	return nil, usageError{fmt.Errorf("%w: %q; configured: %v", projections.ErrNotFound, name, names)}
}

// openProjections opens the read models of the configured projections:
// one database per SQLite file, shared by the projections that name it.
// With mustExist (status, rebuild) a missing SQLite file is an error
// instead of a new, empty read model.
func openProjections(ctx context.Context, cfg Config, js jetstream.JetStream, mustExist bool) (*projectionSet, error) {
	set := &projectionSet{dbs: map[string]*sql.DB{}}
	for _, pc := range cfg.Projections {
		var filters []subjects.Filter
		for _, f := range pc.Filters {
			pf, err := subjects.ParseFilter(f)
			if err != nil {
				set.Close()
				return nil, err
			}
			filters = append(filters, pf)
		}
		d := projections.Documents{Name: pc.Name, Filters: filters, Delete: pc.Delete}
		var p projections.Projection
		var err error
		switch pc.ReadModel {
		case readModelSQLite:
			file := pc.Database
			if file == "" {
				file = defaultProjectionDB
			}
			db := set.dbs[file]
			if db == nil {
				if mustExist {
					if _, serr := os.Stat(file); errors.Is(serr, fs.ErrNotExist) {
						set.Close()
						return nil, fmt.Errorf("%w: projection %s: its database %s does not exist (nothing was created): check projections[].database in %s (relative to that file), or let serve or project create it first",
							projections.ErrNotFound, pc.Name, file, cfg.file)
					}
				}
				if db, err = projections.OpenSQLite(file); err != nil {
					set.Close()
					return nil, err
				}
				set.dbs[file] = db
			}
			p, err = projections.NewSQL(ctx, db, d.SQL(pc.Table, "sqlite:"+file))
		case readModelKV:
			kv := d.KV(pc.Bucket)
			kv.MaxBytes = int64(cfg.Buckets.MaxBytes)
			p, err = projections.NewKV(ctx, js, kv)
		default:
			err = fmt.Errorf("%w: %s: read model %q", projections.ErrInvalidProjection, pc.Name, pc.ReadModel)
		}
		if err != nil {
			set.Close()
			return nil, err
		}
		set.projs = append(set.projs, p)
	}
	if len(set.projs) == 0 {
		return nil, errors.New("no projections configured")
	}
	return set, nil
}
