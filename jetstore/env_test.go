package jetstore_test

import (
	"testing"

	"github.com/jetsource/jetsource/embedded"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
)

// The scenarios that need a server run twice: on one server with
// single-replica streams, and on a three-node cluster with replicated
// streams. Each starts its servers once for all its subtests (the start
// of a cluster is the main cost).

func TestSingleServer(t *testing.T) {
	env := &raceEnv{nodes: []*embedded.Server{embeddedtest.Run(t)}}
	t.Run("Race", func(t *testing.T) { runRaceCases(t, env, raceCases(1, raceRounds(raceRoundsR1))) })
	t.Run("Strict", func(t *testing.T) { testStrict(t, env, 1) })
	t.Run("Glitches", func(t *testing.T) { testGlitches(t, env, 1) })
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster; TestSingleServer runs the same scenarios on one server")
	}
	env := &raceEnv{nodes: embeddedtest.RunCluster(t, 3)}
	t.Run("Race", func(t *testing.T) { runRaceCases(t, env, raceCases(3, raceRounds(raceRoundsR3))) })
	t.Run("Strict", func(t *testing.T) { testStrict(t, env, 3) })
	t.Run("Glitches", func(t *testing.T) { testGlitches(t, env, 3) })
}
