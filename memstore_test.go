package jetsource_test

import (
	"testing"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/storetest"
)

func TestMemoryStoreCompliance(t *testing.T) {
	storetest.Run(t, storetest.Features{}, func(t testing.TB, _ string) jetsource.Store {
		s, err := jetsource.NewMemoryStore()
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
