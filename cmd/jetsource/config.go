package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/jetstore"
	"github.com/jetsource/jetsource/projections"
	"github.com/jetsource/jetsource/subjects"
)

// Config is the configuration file of jetsource serve. Every field has a
// default (see DefaultConfig); flags override the file.
type Config struct {
	Server ServerConfig `yaml:"server"`
	Stream StreamConfig `yaml:"stream"`
	// Source is the CloudEvents source of events appended without one.
	Source string    `yaml:"source"`
	Log    LogConfig `yaml:"log"`
	// Projections are the read models that "jetsource project" and
	// "jetsource serve" keep up to date.
	Projections ProjectionConfigs `yaml:"projections"`
}

// ServerConfig configures the embedded NATS server.
type ServerConfig struct {
	// Listen is the client address, host:port (port 0: any free port).
	Listen string `yaml:"listen"`
	// Data is the directory of the JetStream files.
	Data string `yaml:"data"`
	// Sync is "always" (every write synced before it is acknowledged, the
	// default) or a duration such as "1s" (sync at that interval: faster,
	// but a machine crash loses up to that much acknowledged data).
	Sync string `yaml:"sync"`
	// MaxPayload is the largest message in bytes (default 1 MiB).
	MaxPayload int `yaml:"max_payload"`
}

// StreamConfig configures the event stream.
type StreamConfig struct {
	Name       string   `yaml:"name"`
	Subjects   []string `yaml:"subjects"`
	Replicas   int      `yaml:"replicas"`
	Duplicates Duration `yaml:"duplicates"`
	MaxMsgSize int32    `yaml:"max_msg_size"`
	// AllowDelete lets operators delete single events (off: events are
	// facts; the stream denies deletes and purges).
	AllowDelete bool `yaml:"allow_delete"`
}

// LogConfig configures the structured log on standard error.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Duration is a time.Duration written as "2m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 2m or 30s)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// DefaultSubjects are the subject roots captured when no configuration
// names any: those of the example users-and-groups domain, the audit events
// of flag changes and the invalidations of transactions.
var defaultSubjects = []string{"users.>", "groups.>", "companies.>", "flags.>", jetsource.InvalidationRoot + ".>"}

// DefaultConfig returns the configuration used when no file is given.
func DefaultConfig() Config {
	return Config{
		Server: ServerConfig{Listen: "127.0.0.1:4222", Data: "jetsource-data", Sync: "always"},
		Stream: StreamConfig{Name: jetstore.DefaultStreamName, Subjects: append([]string(nil), defaultSubjects...), Replicas: 1, Duplicates: Duration(2 * time.Minute)},
		Source: "/jetsource",
		Log:    LogConfig{Level: "info", Format: "text"},
	}
}

// LoadConfig reads a YAML configuration file over the defaults. Unknown
// fields are errors, so a misspelt key does not pass silently.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file is the default
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if _, err := c.syncInterval(); err != nil {
		errs = append(errs, err)
	}
	if c.Server.MaxPayload < 0 {
		errs = append(errs, fmt.Errorf("server.max_payload: %d is negative", c.Server.MaxPayload))
	}
	if err := c.streamConfig().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("stream: %w", err))
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	errs = append(errs, c.Projections.validate()...)
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	return errors.Join(errs...)
}

// syncInterval returns 0 for "always" or the interval.
func (c Config) syncInterval() (time.Duration, error) {
	if c.Server.Sync == "" || c.Server.Sync == "always" {
		return 0, nil
	}
	d, err := time.ParseDuration(c.Server.Sync)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("server.sync: %q is neither \"always\" nor a positive duration", c.Server.Sync)
	}
	return d, nil
}

func (c Config) streamConfig() jetstore.StreamConfig {
	return jetstore.StreamConfig{
		Name: c.Stream.Name, Subjects: c.Stream.Subjects, Replicas: c.Stream.Replicas,
		Duplicates: time.Duration(c.Stream.Duplicates), MaxMsgSize: c.Stream.MaxMsgSize,
		AllowDelete: c.Stream.AllowDelete,
	}
}

// Read models of a projection.
const (
	readModelSQLite = "sqlite"
	readModelKV     = "kv"
)

// ProjectionConfig configures a projection that needs no code: the events
// matching its filters fold into one JSON document per entity (the event's
// aggregate) by JSON merge patch of their data.
type ProjectionConfig struct {
	// Name identifies the projection.
	Name string
	// Filters select its events, such as "users.>".
	Filters []string
	// ReadModel is "sqlite" (a table in an SQLite file) or "kv" (a NATS
	// KV bucket).
	ReadModel string
	// Database is the SQLite file (sqlite; default projections.db).
	Database string
	// Table is the SQLite table (sqlite; default: the name).
	Table string
	// Bucket is the KV bucket (kv; default: the name).
	Bucket string
	// Delete names the events (last subject token) that delete the
	// entity's document.
	Delete []string

	// line is the line of the projection, lines that of each field.
	line  int
	lines map[string]int
}

// ProjectionConfigs is the projections: section; it records line numbers
// so that every problem names its line and field.
type ProjectionConfigs []ProjectionConfig

// projectionFields are the keys of a projection, in the order documented.
var projectionFields = []string{"name", "filters", "read_model", "database", "table", "bucket", "delete"}

// UnmarshalYAML decodes the list, refusing unknown keys (the decoder's
// strictness does not reach custom unmarshalers).
func (ps *ProjectionConfigs) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: projections: want a list of projections", n.Line)
	}
	out := make(ProjectionConfigs, 0, len(n.Content))
	for i, item := range n.Content {
		where := fmt.Sprintf("projections[%d]", i)
		if item.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: %s: want a mapping with %s", item.Line, where, strings.Join(projectionFields, ", "))
		}
		p := ProjectionConfig{line: item.Line, lines: map[string]int{}}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			p.lines[k.Value] = k.Line
			var err error
			switch k.Value {
			case "name":
				err = v.Decode(&p.Name)
			case "filters":
				err = v.Decode(&p.Filters)
			case "read_model":
				err = v.Decode(&p.ReadModel)
			case "database":
				err = v.Decode(&p.Database)
			case "table":
				err = v.Decode(&p.Table)
			case "bucket":
				err = v.Decode(&p.Bucket)
			case "delete":
				err = v.Decode(&p.Delete)
			default:
				return fmt.Errorf("line %d: %s: field %s not found (known: %s)", k.Line, where, k.Value, strings.Join(projectionFields, ", "))
			}
			if err != nil {
				return fmt.Errorf("line %d: %s.%s: %w", v.Line, where, k.Value, err)
			}
		}
		out = append(out, p)
	}
	*ps = out
	return nil
}

// at returns the line of a field (or of the projection).
func (p ProjectionConfig) at(field string) string {
	if l, ok := p.lines[field]; ok {
		return fmt.Sprintf("line %d: ", l)
	}
	if p.line > 0 {
		return fmt.Sprintf("line %d: ", p.line)
	}
	return ""
}

// validate reports every problem of every projection, each with its line
// and field.
func (ps ProjectionConfigs) validate() []error {
	var errs []error
	first := map[string]int{}
	for i, p := range ps {
		where := fmt.Sprintf("projections[%d]", i)
		bad := func(field, format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s%s.%s: %s", p.at(field), where, field, fmt.Sprintf(format, a...)))
		}
		switch {
		case p.Name == "":
			bad("name", "missing: every projection needs a name")
		case projections.ValidName(p.Name) != nil:
			bad("name", "%q: use letters, digits, '_' and '-', starting with a letter", p.Name)
		default:
			if j, dup := first[p.Name]; dup {
				bad("name", "duplicate name %q (also projections[%d])", p.Name, j)
			} else {
				first[p.Name] = i
			}
		}
		if len(p.Filters) == 0 {
			bad("filters", "missing: name at least one filter, such as \"users.>\"")
		}
		for j, f := range p.Filters {
			if _, err := subjects.ParseFilter(f); err != nil {
				errs = append(errs, fmt.Errorf("%s%s.filters[%d]: %w", p.at("filters"), where, j, err))
			}
		}
		switch p.ReadModel {
		case readModelSQLite:
			if p.Bucket != "" {
				bad("bucket", "only for read_model kv")
			}
			if p.Table != "" {
				if err := projections.ValidTable(p.Table); err != nil {
					bad("table", "%v", err)
				}
			}
		case readModelKV:
			if p.Table != "" {
				bad("table", "only for read_model sqlite")
			}
			if p.Database != "" {
				bad("database", "only for read_model sqlite")
			}
			if p.Bucket != "" {
				if err := projections.ValidBucket(p.Bucket); err != nil {
					bad("bucket", "%v", err)
				}
			}
		case "":
			bad("read_model", "missing: sqlite or kv")
		default:
			bad("read_model", "unknown read model %q (want sqlite or kv)", p.ReadModel)
		}
		for j, d := range p.Delete {
			if d == "" || strings.ContainsAny(d, ".*> \t") {
				errs = append(errs, fmt.Errorf("%s%s.delete[%d]: %q is not an event name (one subject token)", p.at("delete"), where, j, d))
			}
		}
	}
	return errs
}
