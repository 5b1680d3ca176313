package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newHandlersCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "handlers", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("handlers: not built yet") }}
}
