package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newBenchLoadCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "load", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("load: not built yet") }}
}
