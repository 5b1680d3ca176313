package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newSurfaceCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "surface", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("surface: not built yet") }}
}
