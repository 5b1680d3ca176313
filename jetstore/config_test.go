package jetstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/embedded/embeddedtest"
	"github.com/jetsource/jetsource/jetstore"
)

// countMatching counts the errors joined in err that match target.
func countMatching(err, target error) int {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if errors.Is(err, target) {
			return 1
		}
		return 0
	}
	n := 0
	for _, e := range joined.Unwrap() {
		if errors.Is(e, target) {
			n++
		}
	}
	return n
}

func TestStreamConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  jetstore.StreamConfig
		// want counts the problems reported per sentinel; none: valid.
		want map[error]int
	}{
		{"OK", jetstore.StreamConfig{Subjects: []string{"users.>"}}, nil},
		{"OKSeveralDisjointSubjects", jetstore.StreamConfig{Name: "APP", Subjects: []string{"users.>", "orders.*.placed", "orders.*.paid"}, Replicas: 3, MaxMsgSize: 1024}, nil},
		{"ErrInvalidOptionNameWithDot", jetstore.StreamConfig{Name: "app.events", Subjects: []string{"users.>"}}, map[error]int{jetsource.ErrInvalidOption: 1}},
		{"ErrInvalidOptionNameWithSpace", jetstore.StreamConfig{Name: "app events", Subjects: []string{"users.>"}}, map[error]int{jetsource.ErrInvalidOption: 1}},
		{"ErrInvalidOptionNameWithWildcard", jetstore.StreamConfig{Name: "APP*", Subjects: []string{"users.>"}}, map[error]int{jetsource.ErrInvalidOption: 1}},
		{"ErrInvalidOptionNoSubjects", jetstore.StreamConfig{Name: "APP"}, map[error]int{jetsource.ErrInvalidOption: 1}},
		{"ErrInvalidSubjectFullWildcard", jetstore.StreamConfig{Subjects: []string{">"}}, map[error]int{jetsource.ErrInvalidSubject: 1}},
		{"ErrInvalidSubjectLeadingWildcard", jetstore.StreamConfig{Subjects: []string{"*.x"}}, map[error]int{jetsource.ErrInvalidSubject: 1}},
		{"ErrInvalidSubjectOverlap", jetstore.StreamConfig{Subjects: []string{"users.>", "users.A.*"}}, map[error]int{jetsource.ErrInvalidSubject: 1}},
		{"ErrInvalidSubjectPartialOverlap", jetstore.StreamConfig{Subjects: []string{"users.*.added", "users.A.>"}}, map[error]int{jetsource.ErrInvalidSubject: 1}},
		{"ErrInvalidSubjectDuplicate", jetstore.StreamConfig{Subjects: []string{"users.>", "users.>"}}, map[error]int{jetsource.ErrInvalidSubject: 1}},
		{"ErrInvalidSubjectMalformed", jetstore.StreamConfig{Subjects: []string{"users..>"}}, map[error]int{jetsource.ErrInvalidSubject: 1}},
		{"ErrInvalidSubjectEmpty", jetstore.StreamConfig{Subjects: []string{""}}, map[error]int{jetsource.ErrInvalidSubject: 1}},
		{"ErrInvalidOptionReplicasNegative", jetstore.StreamConfig{Subjects: []string{"users.>"}, Replicas: -1}, map[error]int{jetsource.ErrInvalidOption: 1}},
		{"ErrInvalidOptionReplicasTooMany", jetstore.StreamConfig{Subjects: []string{"users.>"}, Replicas: 6}, map[error]int{jetsource.ErrInvalidOption: 1}},
		{"ErrInvalidOptionNegativeDuplicates", jetstore.StreamConfig{Subjects: []string{"users.>"}, Duplicates: -time.Second}, map[error]int{jetsource.ErrInvalidOption: 1}},
		{"ErrInvalidOptionNegativeMaxMsgSize", jetstore.StreamConfig{Subjects: []string{"users.>"}, MaxMsgSize: -1}, map[error]int{jetsource.ErrInvalidOption: 1}},
		{
			name: "EveryProblemAtOnce",
			cfg: jetstore.StreamConfig{
				Name:       "bad name",
				Subjects:   []string{"*.x", "users.>", "users.A.>"},
				Replicas:   7,
				Duplicates: -1,
				MaxMsgSize: -1,
			},
			// Options: name, replicas, duplicates, size. Subjects: the
			// leading wildcard of *.x, *.x overlapping users.> (both match
			// users.x), users.A.> overlapping users.>.
			want: map[error]int{jetsource.ErrInvalidOption: 4, jetsource.ErrInvalidSubject: 3},
		},
		{
			// Issue 9: a stream capturing the command bus or the server's
			// own subjects would let appends reach them.
			name: "ErrForbiddenSubject",
			cfg: jetstore.StreamConfig{
				Subjects: []string{"cmd.>", "cmd", "$JS.API.>", "_INBOX.>", "_jetsource.>", "$KV.flags.>", "users.>"},
			},
			want: map[error]int{jetsource.ErrForbiddenSubject: 6, jetsource.ErrInvalidSubject: 6},
		},
		{
			name: "OtherReservedPrefix",
			cfg: jetstore.StreamConfig{
				Subjects:         []string{"cmd.>", "ops.cmd.>", "ops.>"},
				ReservedPrefixes: []string{"ops.cmd"},
			},
			// cmd.> is fine now; ops.cmd.> and ops.> overlap ops.cmd, and
			// each other.
			want: map[error]int{jetsource.ErrForbiddenSubject: 2},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.want == nil {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("got nil, want an error")
			}
			for target, want := range c.want {
				if got := countMatching(err, target); got != want {
					t.Errorf("got %d problems matching %v, want %d; error:\n%v", got, target, want, err)
				}
			}
		})
	}
}

func TestProvision(t *testing.T) {
	srv := embeddedtest.Run(t)
	_, js := newJetStream(t, srv)
	ctx := context.Background()

	info := func(t *testing.T, name string) jetstream.StreamConfig {
		t.Helper()
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		return st.CachedInfo().Config
	}

	t.Run("Defaults", func(t *testing.T) {
		if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Subjects: []string{"defaults.>"}}); err != nil {
			t.Fatal(err)
		}
		got := info(t, jetstore.DefaultStreamName)
		checks := []struct {
			name      string
			got, want any
		}{
			{"Subjects", slices.Equal(got.Subjects, []string{"defaults.>", "_jetsource.guard.EVENTS"}), true},
			{"Storage", got.Storage, jetstream.FileStorage},
			{"Replicas", got.Replicas, 1},
			{"Duplicates", got.Duplicates, 2 * time.Minute},
			{"Retention", got.Retention, jetstream.LimitsPolicy},
			{"Discard", got.Discard, jetstream.DiscardOld},
			{"MaxMsgSize", got.MaxMsgSize, int32(-1)},
			{"AllowDirect", got.AllowDirect, true},
			{"AllowAtomicPublish", got.AllowAtomicPublish, true},
			{"DenyDelete", got.DenyDelete, true},
			{"DenyPurge", got.DenyPurge, true},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
			}
		}
	})

	t.Run("IdempotentAndUpdates", func(t *testing.T) {
		cfg := jetstore.StreamConfig{Name: "TWICE", Subjects: []string{"twice.>"}, Duplicates: time.Minute}
		for i := range 2 {
			if _, err := jetstore.Provision(ctx, js, cfg); err != nil {
				t.Fatalf("provision %d: %v", i+1, err)
			}
		}
		if got := info(t, "TWICE"); got.Duplicates != time.Minute || !slices.Equal(got.Subjects, []string{"twice.>", "_jetsource.guard.TWICE"}) {
			t.Errorf("after provisioning twice: duplicates %v, subjects %v", got.Duplicates, got.Subjects)
		}
		// An existing stream takes the new configuration.
		cfg.Subjects = append(cfg.Subjects, "again.>")
		cfg.MaxMsgSize = 4096
		if _, err := jetstore.Provision(ctx, js, cfg); err != nil {
			t.Fatalf("update: %v", err)
		}
		if got := info(t, "TWICE"); got.MaxMsgSize != 4096 || !slices.Equal(got.Subjects, []string{"twice.>", "again.>", "_jetsource.guard.TWICE"}) {
			t.Errorf("after update: max msg size %d, subjects %v", got.MaxMsgSize, got.Subjects)
		}
	})

	t.Run("AllowDelete", func(t *testing.T) {
		if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "DELETABLE", Subjects: []string{"deletable.>"}, AllowDelete: true}); err != nil {
			t.Fatal(err)
		}
		if got := info(t, "DELETABLE"); got.DenyDelete || got.DenyPurge {
			t.Errorf("deny delete %v, deny purge %v; want both false", got.DenyDelete, got.DenyPurge)
		}
	})

	// Events are facts: once a stream denies deletes, no configuration
	// lets them back in.
	t.Run("CannotAllowDeleteLater", func(t *testing.T) {
		cfg := jetstore.StreamConfig{Name: "FACTS", Subjects: []string{"facts.>"}}
		if _, err := jetstore.Provision(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
		cfg.AllowDelete = true
		if _, err := jetstore.Provision(ctx, js, cfg); err == nil {
			t.Fatal("provision with AllowDelete on a stream that denies deletes: got nil, want an error")
		}
		if got := info(t, "FACTS"); !got.DenyDelete || !got.DenyPurge {
			t.Errorf("deny delete %v, deny purge %v; want both still true", got.DenyDelete, got.DenyPurge)
		}
	})

	t.Run("Memory", func(t *testing.T) {
		if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "MEM", Subjects: []string{"mem.>"}, Memory: true}); err != nil {
			t.Fatal(err)
		}
		if got := info(t, "MEM"); got.Storage != jetstream.MemoryStorage {
			t.Errorf("storage %v, want memory", got.Storage)
		}
	})

	t.Run("ErrInvalidOptionBeforeAsking", func(t *testing.T) {
		_, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "NONE"})
		if !errors.Is(err, jetsource.ErrInvalidOption) {
			t.Fatalf("got %v, want ErrInvalidOption", err)
		}
		if _, err := js.Stream(ctx, "NONE"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream NONE after a refused provision: %v, want not found", err)
		}
	})

	t.Run("OverlapWithAnotherStream", func(t *testing.T) {
		if _, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "WIDE", Subjects: []string{"shared.>"}}); err != nil {
			t.Fatal(err)
		}
		_, err := jetstore.Provision(ctx, js, jetstore.StreamConfig{Name: "NARROW", Subjects: []string{"shared.A.>"}})
		if err == nil {
			t.Fatal("got nil, want an error")
		}
		const codeSubjectOverlap = 10065
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != codeSubjectOverlap {
			t.Errorf("got %v, want the server's subject overlap error (%d)", err, codeSubjectOverlap)
		}
		if _, err := js.Stream(ctx, "NARROW"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream NARROW after a refused provision: %v, want not found", err)
		}
	})
}
