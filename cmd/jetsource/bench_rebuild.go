package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newBenchRebuildCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "rebuild", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("rebuild: not built yet") }}
}
