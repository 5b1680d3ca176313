package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newCommandCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "command", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("command: not built yet") }}
}
