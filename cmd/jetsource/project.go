package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newProjectCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "project", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("project: not built yet") }}
}
