package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/flags"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/internal/suggest"
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
	// Commands are the command sets "jetsource serve" serves on the
	// command bus, and the commands served elsewhere that rules may send.
	Commands CommandsConfig `yaml:"commands"`
	// Handlers are the rules "jetsource serve" and "jetsource handlers"
	// run: events in, follow-on commands out.
	Handlers HandlersConfig `yaml:"handlers"`
	// Flags are where the handlers read their feature flags.
	Flags FlagsConfig `yaml:"flags"`
	// Buckets limit the key-value buckets jetsource creates.
	Buckets BucketsConfig `yaml:"buckets"`
	// MQTT opens an MQTT listener for subscribers of events.
	MQTT MQTTConfig `yaml:"mqtt"`

	// file is the configuration file (empty: none); relative paths in it
	// are resolved against its directory when it is parsed (see
	// resolvePaths), and errors and inline rules are reported in it.
	file string
	// source is the file's text, for inline rules.
	source []byte
	// sets are the command sets the binary offers (nil: the built-in ones,
	// [builtinCommandSets]).
	sets CommandSets
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

	fieldLines
}

var serverFields = []string{"listen", "data", "sync", "max_payload"}

// UnmarshalYAML decodes the section, refusing unknown keys.
func (c *ServerConfig) UnmarshalYAML(n *yaml.Node) error {
	out := *c
	err := decodeSection(n, "server", serverFields, &out.fieldLines, func(key string, v *yaml.Node) error {
		switch key {
		case "listen":
			return decodeString(v, &out.Listen)
		case "data":
			return decodeString(v, &out.Data)
		case "sync":
			return decodeString(v, &out.Sync)
		case "max_payload":
			var n ByteSize
			if err := n.UnmarshalYAML(v); err != nil {
				return err
			}
			if n > 64<<20 {
				return fmt.Errorf("%d bytes is more than the 64MiB a server allows", n)
			}
			out.MaxPayload = int(n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// StreamConfig configures the event stream.
type StreamConfig struct {
	// Name is the stream's name (default EVENTS).
	Name string `yaml:"name"`
	// Subjects are the subject roots it captures, such as "orders.>".
	Subjects []string `yaml:"subjects"`
	// Replicas is the number of copies in a cluster (default 1).
	Replicas int `yaml:"replicas"`
	// Duplicates is the window in which an event id is stored once.
	Duplicates Duration `yaml:"duplicates"`
	// MaxMsgSize limits one event, headers included (0: the server's
	// maximum payload).
	MaxMsgSize ByteSize `yaml:"max_msg_size"`
	// MaxBytes limits the stream's size on disk (0: no limit): a full
	// stream refuses new events and never drops old ones.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// AllowDelete lets operators delete single events (off: events are
	// facts; the stream denies deletes and purges).
	AllowDelete bool `yaml:"allow_delete"`

	fieldLines
}

var streamFields = []string{"name", "subjects", "replicas", "duplicates", "max_msg_size", "max_bytes", "allow_delete"}

// UnmarshalYAML decodes the section, refusing unknown keys.
func (c *StreamConfig) UnmarshalYAML(n *yaml.Node) error {
	out := *c
	err := decodeSection(n, "stream", streamFields, &out.fieldLines, func(key string, v *yaml.Node) error {
		switch key {
		case "name":
			return decodeString(v, &out.Name)
		case "subjects":
			return decodeStrings(v, &out.Subjects)
		case "replicas":
			return decodeInt(v, &out.Replicas)
		case "duplicates":
			return out.Duplicates.UnmarshalYAML(v)
		case "max_msg_size":
			if err := out.MaxMsgSize.UnmarshalYAML(v); err != nil {
				return err
			}
			if out.MaxMsgSize > 1<<31-1 {
				return fmt.Errorf("%d bytes is too large for one event", out.MaxMsgSize)
			}
		case "max_bytes":
			return out.MaxBytes.UnmarshalYAML(v)
		case "allow_delete":
			return decodeBool(v, &out.AllowDelete)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// LogConfig configures the structured log on standard error.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json

	fieldLines
}

var logFields = []string{"level", "format"}

// UnmarshalYAML decodes the section, refusing unknown keys.
func (c *LogConfig) UnmarshalYAML(n *yaml.Node) error {
	out := *c
	err := decodeSection(n, "log", logFields, &out.fieldLines, func(key string, v *yaml.Node) error {
		switch key {
		case "level":
			return decodeString(v, &out.Level)
		case "format":
			return decodeString(v, &out.Format)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// MQTTConfig is the mqtt: section: an MQTT listener (MQTT 3.1.1, the
// server's built-in support) through which MQTT clients subscribe to
// events. The topic users/A/added is the subject users.A.added (+ and #
// are * and >); the payload is the event's data (MQTT 3.1.1 carries no
// ce-* headers); QoS 0 and 1 subscriptions are served. MQTT clients may
// publish nothing unless publish names subjects: anything they published
// on the stream's subjects would become an event unchecked.
//
//	mqtt:
//	  listen: 127.0.0.1:1883    # host:port (port 0: any free port)
//	  publish: ["sensors.>"]    # subjects MQTT clients may publish to (default: none)
type MQTTConfig struct {
	// Listen is the MQTT address (empty: no listener).
	Listen string
	// Publish are the subject filters MQTT clients may publish to.
	Publish []string

	fieldLines
}

var mqttFields = []string{"listen", "publish"}

// UnmarshalYAML decodes the section, refusing unknown keys.
func (c *MQTTConfig) UnmarshalYAML(n *yaml.Node) error {
	out := *c
	err := decodeSection(n, "mqtt", mqttFields, &out.fieldLines, func(key string, v *yaml.Node) error {
		switch key {
		case "listen":
			return decodeString(v, &out.Listen)
		case "publish":
			return decodeStrings(v, &out.Publish)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

func (c MQTTConfig) validate() []error {
	var errs []error
	if c.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("%smqtt.listen: %q is not host:port", c.at("listen"), c.Listen))
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%smqtt.listen: %q has a bad port", c.at("listen"), c.Listen))
		}
	}
	for _, f := range c.Publish {
		if _, err := subjects.ParseFilter(f); err != nil {
			errs = append(errs, fmt.Errorf("%smqtt.publish: %w", c.at("publish"), err))
		}
	}
	if len(c.Publish) > 0 && c.Listen == "" {
		errs = append(errs, fmt.Errorf("%smqtt.publish: needs mqtt.listen", c.at("publish")))
	}
	return errs
}

// BucketsConfig is the buckets: section: limits of the key-value buckets
// jetsource creates (the flag bucket). A bucket that exists keeps its
// configuration.
//
//	buckets:
//	  max_bytes: 100MB          # each bucket's size limit (default: none)
type BucketsConfig struct {
	// MaxBytes limits each bucket's size (0: no limit); a full bucket
	// refuses new values.
	MaxBytes ByteSize

	fieldLines
}

var bucketsFields = []string{"max_bytes"}

// UnmarshalYAML decodes the section, refusing unknown keys.
func (c *BucketsConfig) UnmarshalYAML(n *yaml.Node) error {
	var out BucketsConfig
	err := decodeSection(n, "buckets", bucketsFields, &out.fieldLines, func(key string, v *yaml.Node) error {
		return out.MaxBytes.UnmarshalYAML(v)
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// topFields are the sections of a configuration file.
var topFields = []string{"server", "stream", "source", "log", "projections", "commands", "handlers", "flags", "buckets", "mqtt"}

// UnmarshalYAML decodes the file section by section over the defaults,
// refusing unknown sections.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	out := *c
	var top fieldLines
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // an empty document is the default
	}
	err := decodeSection(n, "", topFields, &top, func(key string, v *yaml.Node) error {
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			return nil // an empty section keeps the defaults
		}
		switch key {
		case "server":
			return v.Decode(&out.Server)
		case "stream":
			return v.Decode(&out.Stream)
		case "source":
			return decodeString(v, &out.Source)
		case "log":
			return v.Decode(&out.Log)
		case "projections":
			return v.Decode(&out.Projections)
		case "commands":
			return v.Decode(&out.Commands)
		case "handlers":
			return v.Decode(&out.Handlers)
		case "flags":
			return v.Decode(&out.Flags)
		case "buckets":
			return v.Decode(&out.Buckets)
		case "mqtt":
			return v.Decode(&out.MQTT)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// Duration is a time.Duration written as "2m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("%q is not a duration (like 2m or 30s)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// defaultSubjects are the subject roots captured when no configuration
// names any: those of the example users-and-groups domain (so that the
// walkthrough and a plain "nats pub users.A.added" work out of the box),
// the audit events of flag changes and the invalidations of transactions.
// Nothing broader is captured by default: a stream that captured every
// subject would also store what other NATS clients publish for other
// purposes (requests, replies, the command bus). Add roots with
// stream.subjects, "serve --subjects" or "jetsource stream add-subject".
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
// fields are errors, so a misspelt key does not pass silently. Relative
// paths in the file are relative to its directory. The files the
// commands, handlers and flags sections name are loaded too, so that a
// rule naming an unknown command or holding a bad expression is reported
// now, with its file, line and field, before anything starts. Every error
// reads "FILE:LINE: problem".
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return DefaultConfig(), fmt.Errorf("config: %w", err)
	}
	cfg, err := parseConfig(path, b, nil)
	if err != nil {
		return cfg, err
	}
	if _, err := cfg.wire(); err != nil {
		return cfg, configError(path, err)
	}
	return cfg, nil
}

// parseConfig decodes and validates a configuration file's text over the
// defaults, reading no other file; name is the file's path, against whose
// directory relative paths are resolved. sets are the command sets
// offered (nil: the built-in ones).
func parseConfig(name string, b []byte, sets CommandSets) (Config, error) {
	cfg := DefaultConfig()
	cfg.file, cfg.source, cfg.sets = name, b, sets
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file is the default
		return cfg, configError(name, yamlErrors(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return cfg, configError(name, yamlErrors(err))
		}
		return cfg, configError(name, fmt.Errorf("line %d: a second YAML document: a configuration file holds one", extra.Line))
	}
	cfg.resolvePaths()
	if err := cfg.Validate(); err != nil {
		return cfg, configError(name, err)
	}
	return cfg, nil
}

// resolvePaths makes the relative paths the file gives relative to its
// directory: server.data, projections[].database (and the default
// projections.db of an SQLite projection), commands.schemas,
// handlers.file and flags.file. Without a file it does nothing.
func (c *Config) resolvePaths() {
	if c.file == "" {
		return
	}
	dir := filepath.Dir(c.file)
	join := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if _, ok := c.Server.lines["data"]; ok {
		join(&c.Server.Data)
	}
	for i := range c.Projections {
		p := &c.Projections[i]
		if p.ReadModel == readModelSQLite && p.Database == "" {
			p.Database = defaultProjectionDB
		}
		join(&p.Database)
	}
	join(&c.Commands.Schemas)
	join(&c.Handlers.File)
	join(&c.Flags.File)
}

// configLineError is a problem of a configuration file: "FILE:LINE: problem"
// (or "FILE: problem" when the line is unknown). It unwraps to the
// original error, so that errors.Is still finds its sentinels.
type configLineError struct {
	file string
	line int
	msg  string
	err  error
}

func (e *configLineError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	return fmt.Sprintf("%s: %s", e.file, e.msg)
}

func (e *configLineError) Unwrap() error { return e.err }

// configError turns the problems of a configuration file, each of whose
// messages may begin with "line N: ", into one "FILE:N: problem" line
// each.
func configError(file string, err error) error {
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, rule := err.(*handlers.RuleError); !rule {
			list = j.Unwrap()
		}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var le *configLineError
		if errors.As(e, &le) {
			out = append(out, e)
			continue
		}
		line, msg := splitLine(e.Error())
		out = append(out, &configLineError{file: file, line: line, msg: msg, err: e})
	}
	return errors.Join(out...)
}

// splitLine splits "line N: rest" into N and rest (0 and s otherwise).
func splitLine(s string) (int, string) {
	rest, ok := strings.CutPrefix(s, "line ")
	if !ok {
		return 0, s
	}
	num, msg, ok := strings.Cut(rest, ": ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n <= 0 {
		return 0, s
	}
	return n, msg
}

// yamlErrors rewrites the YAML parser's errors ("yaml: line 3: ...",
// "yaml: unmarshal errors:\n  line 3: ...") as "line 3: ..." problems;
// the errors of the sections' own decoding pass as they are.
func yamlErrors(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, m := range te.Errors {
			errs = append(errs, errors.New(m))
		}
		return errors.Join(errs...)
	}
	msg, syntax := strings.CutPrefix(err.Error(), "yaml: ")
	if !syntax {
		return err // from a section's own decoding: "line N: field: problem"
	}
	if line, rest := splitLine(msg); line > 0 {
		return fmt.Errorf("line %d: not valid YAML: %s", line, rest)
	}
	return fmt.Errorf("not valid YAML: %s", msg)
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if _, err := c.syncInterval(); err != nil {
		errs = append(errs, fmt.Errorf("%s%w", c.Server.at("sync"), err))
	}
	if c.Server.MaxPayload < 0 {
		errs = append(errs, fmt.Errorf("%sserver.max_payload: %d is negative", c.Server.at("max_payload"), c.Server.MaxPayload))
	}
	if err := c.streamConfig().Validate(); err != nil {
		field := "subjects"
		if _, ok := c.Stream.lines[field]; !ok {
			field = ""
		}
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("%sstream: %w", c.Stream.at(field), e))
		}
	}
	for _, sub := range c.Stream.Subjects {
		if err := checkRoot(sub, c.Commands.prefix()); err != nil {
			errs = append(errs, fmt.Errorf("%sstream.subjects: %w", c.Stream.at("subjects"), err))
		}
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("%slog.level: %q is not one of debug, info, warn, error", c.Log.at("level"), c.Log.Level))
	}
	errs = append(errs, c.Projections.validate()...)
	errs = append(errs, c.Commands.validate(c.commandSets())...)
	errs = append(errs, c.Handlers.validate()...)
	errs = append(errs, c.Flags.validate()...)
	errs = append(errs, c.MQTT.validate()...)
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("%slog.format: %q is not text or json", c.Log.at("format"), c.Log.Format))
	}
	return errors.Join(errs...)
}

// unjoin returns the errors joined in err (or err alone).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
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
		Duplicates: time.Duration(c.Stream.Duplicates), MaxMsgSize: int32(c.Stream.MaxMsgSize),
		MaxBytes: int64(c.Stream.MaxBytes), AllowDelete: c.Stream.AllowDelete,
		ReservedPrefixes: []string{c.Commands.prefix()},
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
			var err error
			if prev, dup := p.lines[k.Value]; dup && k.Line != prev {
				return fmt.Errorf("line %d: %s.%s: given twice (also line %d)", k.Line, where, k.Value, prev)
			}
			p.lines[k.Value] = k.Line
			switch k.Value {
			case "name":
				err = decodeString(v, &p.Name)
			case "filters":
				err = decodeStrings(v, &p.Filters)
			case "read_model":
				err = decodeString(v, &p.ReadModel)
			case "database":
				err = decodeString(v, &p.Database)
			case "table":
				err = decodeString(v, &p.Table)
			case "bucket":
				err = decodeString(v, &p.Bucket)
			case "delete":
				err = decodeStrings(v, &p.Delete)
			default:
				return fmt.Errorf("line %d: unknown field %q in %s (known: %s)", k.Line, k.Value, where, strings.Join(projectionFields, ", "))
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

// fieldLines records where a section and its fields are, so that every
// problem names its line.
type fieldLines struct {
	line  int            // of the section
	lines map[string]int // of each field's key
	items map[string][]int
}

// at returns "line N: " for a field (or the section), or "".
func (l fieldLines) at(field string) string {
	if n, ok := l.lines[field]; ok {
		return fmt.Sprintf("line %d: ", n)
	}
	if l.line > 0 {
		return fmt.Sprintf("line %d: ", l.line)
	}
	return ""
}

// atItem returns "line N: " for the i-th item of a list field.
func (l fieldLines) atItem(field string, i int) string {
	if ls := l.items[field]; i < len(ls) {
		return fmt.Sprintf("line %d: ", ls[i])
	}
	return l.at(field)
}

// present reports whether the section was written in the file.
func (l fieldLines) present() bool { return l.line > 0 }

// decodeSection decodes a mapping section key by key, refusing unknown
// and repeated keys; f decodes one value.
func decodeSection(n *yaml.Node, section string, known []string, l *fieldLines, f func(key string, v *yaml.Node) error) error {
	in, dot := " in "+section, section+"."
	if section == "" {
		in, dot = "", ""
	}
	if n.Kind != yaml.MappingNode {
		if section == "" {
			return fmt.Errorf("line %d: want a mapping of sections (%s)", n.Line, strings.Join(known, ", "))
		}
		return fmt.Errorf("line %d: %s: want a mapping with %s", n.Line, section, strings.Join(known, ", "))
	}
	*l = fieldLines{line: n.Line, lines: map[string]int{}, items: map[string][]int{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || !slices.Contains(known, k.Value) {
			hint := ""
			if c := suggest.Closest(k.Value, known); c != "" {
				hint = fmt.Sprintf("; did you mean %q?", c)
			}
			return fmt.Errorf("line %d: unknown field %q%s (known: %s)%s", k.Line, k.Value, in, strings.Join(known, ", "), hint)
		}
		if prev, dup := l.lines[k.Value]; dup {
			return fmt.Errorf("line %d: %s%s: given twice (also line %d)", k.Line, dot, k.Value, prev)
		}
		l.lines[k.Value] = k.Line
		if v.Kind == yaml.SequenceNode {
			for _, item := range v.Content {
				l.items[k.Value] = append(l.items[k.Value], item.Line)
			}
		}
		if err := f(k.Value, v); err != nil {
			if _, rest := splitLine(err.Error()); rest != err.Error() {
				return err // a nested section names its own line and field
			}
			return fmt.Errorf("line %d: %s%s: %w", v.Line, dot, k.Value, err)
		}
	}
	return nil
}

// decodeInt decodes a whole number.
func decodeInt(v *yaml.Node, out *int) error {
	n, err := strconv.Atoi(strings.ReplaceAll(v.Value, "_", ""))
	if v.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("%q is not a whole number", v.Value)
	}
	*out = n
	return nil
}

// decodeBool decodes true or false.
func decodeBool(v *yaml.Node, out *bool) error {
	var b bool
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
		return fmt.Errorf("%q is not true or false", v.Value)
	}
	*out = b
	return nil
}

// decodeString decodes a scalar string.
func decodeString(v *yaml.Node, out *string) error {
	if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
		return errors.New("want a string")
	}
	*out = v.Value
	return nil
}

// decodeStrings decodes a list of strings.
func decodeStrings(v *yaml.Node, out *[]string) error {
	if v.Kind != yaml.SequenceNode {
		return errors.New("want a list of strings")
	}
	list := make([]string, 0, len(v.Content))
	for _, item := range v.Content {
		if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
			return fmt.Errorf("line %d: want a list of strings", item.Line)
		}
		list = append(list, item.Value)
	}
	*out = list
	return nil
}

// CommandsConfig is the commands: section: the command sets to serve on
// the command bus and how.
//
//	commands:
//	  sets: [example]           # command sets built into the binary
//	  remote: [NotifyUser]      # commands served by other processes, for rules
//	  prefix: cmd               # subjects cmd.<name> (default cmd)
//	  queue: jetsource-commands # queue group of the workers (the default)
//	  concurrency: 64           # commands executed at once (default 64)
//	  schemas: ./schemas        # optional: JSON Schemas of payloads, <Name>.json
type CommandsConfig struct {
	// Sets names the command sets to serve, each registered by name in
	// the binary ([builtinCommandSets]: example).
	Sets []string
	// Remote names commands that other processes serve and that rules
	// may send.
	Remote []string
	// Prefix is the first token(s) of command subjects (default cmd).
	Prefix string
	// Queue is the queue group of the command workers (default
	// jetsource-commands).
	Queue string
	// Concurrency is how many commands are executed at once (0: 64).
	Concurrency int
	// Schemas is a directory of JSON Schemas checking command payloads,
	// one file per command name (relative to the configuration file).
	Schemas string

	fieldLines
}

var commandsFields = []string{"sets", "remote", "prefix", "queue", "concurrency", "schemas"}

// UnmarshalYAML decodes the section, refusing unknown keys.
func (c *CommandsConfig) UnmarshalYAML(n *yaml.Node) error {
	var out CommandsConfig
	err := decodeSection(n, "commands", commandsFields, &out.fieldLines, func(key string, v *yaml.Node) error {
		switch key {
		case "sets":
			return decodeStrings(v, &out.Sets)
		case "remote":
			return decodeStrings(v, &out.Remote)
		case "prefix":
			return decodeString(v, &out.Prefix)
		case "queue":
			return decodeString(v, &out.Queue)
		case "concurrency":
			return decodeInt(v, &out.Concurrency)
		case "schemas":
			return decodeString(v, &out.Schemas)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// prefix returns the subject prefix of commands.
func (c CommandsConfig) prefix() string {
	if c.Prefix == "" {
		return handlers.DefaultPrefix
	}
	return c.Prefix
}

// queue returns the queue group of command workers.
func (c CommandsConfig) queue() string {
	if c.Queue == "" {
		return handlers.DefaultQueue
	}
	return c.Queue
}

// validate reports every problem of the section with its line and field.
func (c CommandsConfig) validate(sets CommandSets) []error {
	var errs []error
	bad := func(at, field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%scommands.%s: %s", at, field, fmt.Sprintf(format, a...)))
	}
	known := slices.Sorted(maps.Keys(sets))
	seen := map[string]bool{}
	for i, name := range c.Sets {
		field := fmt.Sprintf("sets[%d]", i)
		switch {
		case sets[name] == nil:
			bad(c.atItem("sets", i), field, "unknown command set %q (this binary has: %s)", name, strings.Join(known, ", "))
		case seen[name]:
			bad(c.atItem("sets", i), field, "command set %q is named twice", name)
		}
		seen[name] = true
	}
	for i, name := range c.Remote {
		if err := handlers.ValidName(name); err != nil {
			bad(c.atItem("remote", i), fmt.Sprintf("remote[%d]", i), "%v", err)
		}
	}
	if c.Prefix != "" {
		if s, err := subjects.Parse(c.Prefix); err != nil || s.String() != c.Prefix {
			bad(c.at("prefix"), "prefix", "%q must be literal subject tokens, such as cmd or app.cmd", c.Prefix)
		}
	}
	if c.Queue != "" && (strings.ContainsFunc(c.Queue, unicode.IsSpace) || strings.ContainsAny(c.Queue, "*>")) {
		bad(c.at("queue"), "queue", "%q: a queue group has no spaces or wildcards", c.Queue)
	}
	if c.Concurrency < 0 {
		bad(c.at("concurrency"), "concurrency", "%d is negative", c.Concurrency)
	}
	if c.present() && len(c.Sets) == 0 && len(c.Remote) == 0 {
		bad(c.at("sets"), "sets", "missing: name the command sets to serve (this binary has: %s) or the commands served elsewhere (remote)", strings.Join(known, ", "))
	}
	return errs
}

// HandlersConfig is the handlers: section: the rules that react to events
// with follow-on commands, from a rule file or inline.
//
//	handlers:
//	  file: handlers.yaml       # a rule file (relative to this file)
//
//	handlers:
//	  rules:                    # or the rules themselves
//	    - name: join-default-group
//	      on: users.*.*.inserted
//	      do: {command: AddUserToGroup, payload: {...}}
//
// The rule format is that of [handlers.ParseRules]. A do rule may send
// the commands of commands.sets and commands.remote, no others.
type HandlersConfig struct {
	// File is the rule file (relative to the configuration file).
	File string
	// rules is the key of the inline rules (nil: none); flow tells that
	// the section is written in flow style.
	rules *yaml.Node
	flow  bool

	fieldLines
}

var handlersFields = []string{"file", "rules"}

// UnmarshalYAML decodes the section, refusing unknown keys.
func (h *HandlersConfig) UnmarshalYAML(n *yaml.Node) error {
	var out HandlersConfig
	err := decodeSection(n, "handlers", handlersFields, &out.fieldLines, func(key string, v *yaml.Node) error {
		switch key {
		case "file":
			return decodeString(v, &out.File)
		case "rules":
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i+1] == v {
					out.rules = n.Content[i]
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	out.flow = n.Style&yaml.FlowStyle != 0
	*h = out
	return nil
}

// configured reports whether the section names rules.
func (h HandlersConfig) configured() bool { return h.File != "" || h.rules != nil }

// validate reports every problem of the section with its line and field.
func (h HandlersConfig) validate() []error {
	var errs []error
	switch {
	case h.File != "" && h.rules != nil:
		errs = append(errs, fmt.Errorf("%shandlers.rules: give a rule file or inline rules, not both", h.at("rules")))
	case h.present() && !h.configured():
		errs = append(errs, fmt.Errorf("%shandlers: missing: a rule file (file) or inline rules (rules)", h.at("")))
	case h.rules != nil && h.flow:
		errs = append(errs, fmt.Errorf("%shandlers: write the section with inline rules in block style (one key per line)", h.at("")))
	}
	return errs
}

// FlagsConfig is the flags: section: where the handlers read feature
// flags.
//
//	flags:
//	  file: flags.yaml          # defaults and descriptions (relative to this file)
//	  bucket: jetsource_flags   # KV bucket of the values set at run time (the default)
type FlagsConfig struct {
	// File is the flag file of defaults (relative to the configuration
	// file; see [flags.ParseFile]).
	File string
	// Bucket is the key-value bucket of the values set with "jetsource
	// flags set" (default jetsource_flags).
	Bucket string

	fieldLines
}

var flagsFields = []string{"file", "bucket"}

// UnmarshalYAML decodes the section, refusing unknown keys.
func (f *FlagsConfig) UnmarshalYAML(n *yaml.Node) error {
	var out FlagsConfig
	err := decodeSection(n, "flags", flagsFields, &out.fieldLines, func(key string, v *yaml.Node) error {
		switch key {
		case "file":
			return decodeString(v, &out.File)
		case "bucket":
			return decodeString(v, &out.Bucket)
		}
		return nil
	})
	if err != nil {
		return err
	}
	*f = out
	return nil
}

// bucketConfig returns the configuration of a bucket jetsource creates:
// its name and the limits of the buckets section.
func (c Config) bucketConfig(name string) jetstream.KeyValueConfig {
	kc := jetstream.KeyValueConfig{Bucket: name}
	if c.Buckets.MaxBytes > 0 {
		kc.MaxBytes = int64(c.Buckets.MaxBytes)
	}
	return kc
}

// bucket returns the flag bucket.
func (f FlagsConfig) bucket() string {
	if f.Bucket == "" {
		return flags.DefaultBucket
	}
	return f.Bucket
}

// validate reports every problem of the section with its line and field.
func (f FlagsConfig) validate() []error {
	if f.Bucket != "" && !validBucketName(f.Bucket) {
		return []error{fmt.Errorf("%sflags.bucket: %q: use letters, digits, '_' and '-'", f.at("bucket"), f.Bucket)}
	}
	return nil
}

func validBucketName(b string) bool {
	if b == "" || len(b) > 200 {
		return false
	}
	for _, c := range []byte(b) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// commandSets returns the command sets the binary offers.
func (c Config) commandSets() CommandSets {
	if c.sets != nil {
		return c.sets
	}
	return builtinCommandSets()
}

// wiring is what the commands, handlers and flags sections make, built
// before anything starts so that a bad section starts nothing.
type wiring struct {
	// registry holds the commands of commands.sets (nil: none).
	registry *handlers.Registry
	schemas  *jetsource.Schemas
	// rules are the compiled handlers (none: no handlers section).
	rules []*handlers.Rule
	// flagDefs are the flag file's defaults.
	flagDefs flags.Definitions
}

// flagged reports whether a rule is gated by a flag.
func (w *wiring) flagged() bool {
	for _, r := range w.rules {
		if r.Flag != "" {
			return true
		}
	}
	return false
}

// wire builds the command registry, compiles the rules (which may send
// the commands of the sets and the remote ones) and loads the flag file
// and payload schemas. Its errors name the file, line and field.
func (c Config) wire() (*wiring, error) {
	w := &wiring{}
	var errs []error
	sets := c.commandSets()
	var names []string
	if len(c.Commands.Sets) > 0 {
		w.registry = handlers.NewRegistry()
		for i, name := range c.Commands.Sets {
			register := sets[name]
			if register == nil {
				errs = append(errs, fmt.Errorf("%scommands.sets[%d]: unknown command set %q", c.Commands.atItem("sets", i), i, name))
				continue
			}
			if err := register(w.registry); err != nil {
				errs = append(errs, fmt.Errorf("%scommands.sets[%d]: command set %s: %w", c.Commands.atItem("sets", i), i, name, err))
			}
		}
		names = w.registry.Names()
	}
	if c.Commands.Schemas != "" {
		s, err := jetsource.LoadSchemas(c.Commands.Schemas)
		if err != nil {
			errs = append(errs, fmt.Errorf("%scommands.schemas: %w", c.Commands.at("schemas"), err))
		}
		w.schemas = s
	}
	if c.Flags.File != "" {
		defs, err := flags.LoadFile(c.Flags.File)
		if err != nil {
			errs = append(errs, fmt.Errorf("%sflags.file: %w", c.Flags.at("file"), err))
		}
		w.flagDefs = defs
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	reactions, err := builtinReactions()
	if err != nil {
		return nil, err
	}
	opts := []handlers.RuleOption{handlers.WithCommands(append(names, c.Commands.Remote...)...), handlers.WithReactions(reactions)}
	switch {
	case c.Handlers.File != "":
		rules, err := handlers.LoadRules(c.Handlers.File, opts...)
		if err != nil {
			return nil, fmt.Errorf("%shandlers.file: %w", c.Handlers.at("file"), err)
		}
		w.rules = rules
	case c.Handlers.rules != nil:
		rules, err := handlers.ParseRules(c.file, inlineRules(c.source, c.Handlers.rules), opts...)
		if err != nil {
			return nil, inlineRuleErrors(err)
		}
		w.rules = rules
	}
	return w, nil
}

// inlineRules returns the text of a rule file equivalent to the inline
// rules under key (handlers.rules) of the configuration src: every line
// outside them blanked, so that each keeps its number, and the key's
// line starting with "handlers:" instead of "rules:". The rules are the
// lines after the key that are indented more than it (or as much, when
// they are items of a list), with blank and comment lines among them.
func inlineRules(src []byte, key *yaml.Node) []byte {
	lines := strings.Split(string(src), "\n")
	first, indent := key.Line-1, key.Column-1
	out := make([]string, len(lines))
	if first < 0 || first >= len(lines) || indent < 0 || indent >= len(lines[first]) {
		return []byte("handlers:\n")
	}
	rest := lines[first][indent:]
	colon := strings.IndexByte(rest, ':')
	if colon < 0 {
		return []byte("handlers:\n")
	}
	out[first] = "handlers:" + rest[colon+1:]
	for i := first + 1; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\r")
		t := strings.TrimLeft(l, " ")
		in := len(l) - len(t)
		switch {
		case t == "" || strings.HasPrefix(t, "#"):
		case in > indent, in == indent && (t == "-" || strings.HasPrefix(t, "- ")):
		default:
			return []byte(strings.Join(out, "\n"))
		}
		out[i] = l
	}
	return []byte(strings.Join(out, "\n"))
}

// inlineRuleErrors renames the fields of rule errors found in inline
// rules from handlers[i] to handlers.rules[i].
func inlineRuleErrors(err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, rule := err.(*handlers.RuleError); !rule {
			list = j.Unwrap()
		}
	}
	if list == nil {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		re, ok := e.(*handlers.RuleError)
		if !ok {
			out = append(out, e)
			continue
		}
		c := *re
		switch {
		case c.Field == "handlers":
			c.Field = "handlers.rules"
		case strings.HasPrefix(c.Field, "handlers["):
			c.Field = "handlers.rules" + strings.TrimPrefix(c.Field, "handlers")
		}
		out = append(out, &c)
	}
	return errors.Join(out...)
}
