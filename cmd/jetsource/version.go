package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"
)

// versionInfo is what "jetsource version" prints.
type versionInfo struct {
	// Version is the module version of jetsource: a tag such as v0.3.1
	// when installed with go install, "(devel)" when built from a source
	// tree.
	Version string `json:"version"`
	// Revision and Modified tell the commit of a source-tree build and
	// whether its tree had uncommitted changes.
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// NATSServer is the version of the nats-server embedded by serve.
	NATSServer string `json:"nats_server"`
	// Go is the Go version the binary was built with.
	Go string `json:"go"`
}

// buildVersion reads the version from the binary's build information.
func buildVersion() versionInfo {
	v := versionInfo{Version: "(devel)", NATSServer: server.VERSION, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the one line of "jetsource --version".
func (v versionInfo) String() string {
	s := "jetsource " + v.Version
	if v.Revision != "" {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += " (" + rev
		if v.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return fmt.Sprintf("%s, nats-server v%s, %s", s, v.NATSServer, v.Go)
}

func (m *Main) newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of jetsource and of the NATS server it embeds",
		Long: `version prints the module version of jetsource ("(devel)" when built from a
source tree, with the commit), the version of the nats-server that "jetsource
serve" embeds and the Go version. -o json prints them as one JSON object.
"jetsource --version" prints the same line.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := buildVersion()
			if g.output == "json" {
				m.writeJSON(v)
				return nil
			}
			fmt.Fprintln(m.Stdout, v.String())
			return nil
		},
	}
}
