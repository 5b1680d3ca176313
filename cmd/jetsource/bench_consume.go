package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newBenchConsumeCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "consume", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("consume: not built yet") }}
}
