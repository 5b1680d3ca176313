package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newBenchCommandsCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "commands", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("commands: not built yet") }}
}
