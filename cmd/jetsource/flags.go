package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newFlagsCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "flags", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("flags: not built yet") }}
}
