package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newStateCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "state", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("state: not built yet") }}
}
