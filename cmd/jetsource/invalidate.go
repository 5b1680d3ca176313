package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newInvalidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "invalidate", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("invalidate: not built yet") }}
}
