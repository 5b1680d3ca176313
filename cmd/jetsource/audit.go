package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func (m *Main) newAuditCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "audit", Hidden: true, RunE: func(*cobra.Command, []string) error { return errors.New("audit: not built yet") }}
}
