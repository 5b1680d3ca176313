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
)

// Config is the configuration file of jetsource serve. Every field has a
// default (see DefaultConfig); flags override the file.
type Config struct {
	Server ServerConfig `yaml:"server"`
	Stream StreamConfig `yaml:"stream"`
	// Source is the CloudEvents source of events appended without one.
	Source string    `yaml:"source"`
	Log    LogConfig `yaml:"log"`
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
