package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newProjectionsCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "projections", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("projections: not built yet") }}
}
