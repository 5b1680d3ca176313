package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/handlers"
	"github.com/jetsource/jetsource/subjects"
)

// hook is a local receiver that records what it got.
type hook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []*http.Request
	bodies [][]byte
	// answer returns the status of the n-th request (from 1) for an
	// event id; nil: 200.
	answer func(n int, r *http.Request) int
	calls  map[string]int
	block  chan struct{} // closed at cleanup: releases hanging handlers
}

func newHook(t *testing.T, answer func(n int, r *http.Request) int) *hook {
	t.Helper()
	h := &hook{answer: answer, calls: map[string]int{}, block: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		id := r.Header.Get("ce-id")
		h.calls[id]++
		n := h.calls[id]
		h.got = append(h.got, r)
		h.bodies = append(h.bodies, body)
		h.mu.Unlock()
		code := http.StatusOK
		if h.answer != nil {
			code = h.answer(n, r)
		}
		if code == 0 { // hang
			select {
			case <-r.Context().Done():
			case <-h.block:
			}
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(func() { close(h.block); h.srv.Close() })
	return h
}

func (h *hook) count(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id]
}

func webhookRules(t *testing.T, url, extra string, opts ...handlers.RuleOption) []*handlers.Rule {
	t.Helper()
	return parseRules(t, fmt.Sprintf(`
handlers:
  - name: hook
    on: users.*.*.inserted
%s    webhook:
      url: %s
      timeout: 300ms
      secret_env: HOOK_SECRET
`, extra, url), append([]handlers.RuleOption{handlers.WithGetenv(func(k string) string {
		if k == "HOOK_SECRET" {
			return "s3cret"
		}
		return ""
	})}, opts...)...)
}

func TestWebhookDeliversCloudEventWithSignature(t *testing.T) {
	e := newRxEnv(t)
	h := newHook(t, nil)
	r := e.start(t, webhookRules(t, h.srv.URL+"/users?token=x", ""), e.proc)
	id := e.insert(t, "acme", "ann")
	settled(t, r, "hook", 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) != 1 {
		t.Fatalf("%d requests, want 1", len(h.got))
	}
	req, body := h.got[0], h.bodies[0]
	for k, want := range map[string]string{
		"ce-specversion":        "1.0",
		"ce-id":                 id,
		"ce-type":               "users.inserted",
		"ce-subject":            "users.acme.ann.inserted",
		"Content-Type":          "application/json",
		"X-Jetsource-Signature": handlers.Sign([]byte("s3cret"), body),
	} {
		if got := req.Header.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if req.Method != http.MethodPost || req.URL.Path != "/users" || req.URL.Query().Get("token") != "x" {
		t.Errorf("request %s %s", req.Method, req.URL)
	}
	if req.Header.Get("ce-source") == "" || req.Header.Get("ce-time") == "" || req.Header.Get("ce-correlationid") != "conv-ann" {
		t.Errorf("attributes missing: %v", req.Header)
	}
	if !strings.Contains(string(body), `"username":"ann"`) {
		t.Errorf("body %s, want the event's data", body)
	}
}

// A receiver answering 500 then 200 gets the event twice and it is
// acknowledged; no dead letter.
func TestWebhookRetriesAfter500(t *testing.T) {
	e := newRxEnv(t)
	h := newHook(t, func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	r := e.start(t, webhookRules(t, h.srv.URL, "    backoff: [50ms]\n"), e.proc)
	id := e.insert(t, "acme", "ann")
	settled(t, r, "hook", 1)
	if n := h.count(id); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	if n := deadLetters(t, e, "hook"); n != 0 {
		t.Fatalf("%d dead letters, want 0", n)
	}
}

// A receiver that hangs: each attempt ends at the timeout, the last one
// dead-letters the event, and the events of other aggregates are
// delivered meanwhile (no worker stall).
func TestWebhookHangingReceiverDeadLettersWithoutStall(t *testing.T) {
	e := newRxEnv(t)
	h := newHook(t, func(_ int, r *http.Request) int {
		if strings.HasPrefix(r.Header.Get("ce-subject"), "users.acme.slow.") {
			return 0
		}
		return http.StatusNoContent
	})
	r := e.start(t, webhookRules(t, h.srv.URL, "    max_deliver: 2\n    backoff: [20ms]\n    concurrency: 4\n"), e.proc)
	slow := e.insert(t, "acme", "slow")
	start := time.Now()
	var others []string
	for i := range 6 {
		others = append(others, e.insert(t, "acme", fmt.Sprintf("u%d", i)))
	}
	waitFor(t, 10*time.Second, func() error {
		for _, id := range others {
			if h.count(id) != 1 {
				return fmt.Errorf("event %s not delivered yet", id)
			}
		}
		return nil
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the other events took %v: the hanging receiver stalled the worker", d)
	}
	waitFor(t, 10*time.Second, func() error {
		if n := deadLetters(t, e, "hook"); n != 1 {
			return fmt.Errorf("%d dead letters, want 1", n)
		}
		return nil
	})
	if n := h.count(slow); n != 2 {
		t.Fatalf("%d attempts of the hanging event, want 2 (max_deliver)", n)
	}
	settled(t, r, "hook", 6) // the dead-lettered event is terminated, not acknowledged
}

// A 4xx answer (other than 408, 425, 429) dead-letters at once.
func TestWebhook4xxIsPermanent(t *testing.T) {
	e := newRxEnv(t)
	h := newHook(t, func(int, *http.Request) int { return http.StatusBadRequest })
	e.start(t, webhookRules(t, h.srv.URL, "    max_deliver: 5\n    backoff: [20ms]\n"), e.proc)
	id := e.insert(t, "acme", "ann")
	waitFor(t, 10*time.Second, func() error {
		if n := deadLetters(t, e, "hook"); n != 1 {
			return fmt.Errorf("%d dead letters, want 1", n)
		}
		return nil
	})
	if n := h.count(id); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestWebhookRuleErrors(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"ErrNoURL", "webhook: {timeout: 1s}", "url: missing"},
		{"ErrBadURL", "webhook: {url: ftp://x}", "want an http or https URL"},
		{"ErrBadTimeout", "webhook: {url: 'http://x', timeout: soon}", "want a positive duration"},
		{"ErrUnsetSecret", "webhook: {url: 'http://x', secret_env: NOPE}", "NOPE is empty or not set"},
		{"ErrBothSecrets", "webhook: {url: 'http://x', secret_env: HOOK_SECRET, secret_file: " + secretFile + "}", "not both"},
		{"ErrWithDo", "webhook: {url: 'http://x'}\n    do: {command: AddUserToGroup}", "one of do, go and webhook"},
		{"ErrCEHeader", "webhook: {url: 'http://x', headers: {ce-id: x}}", "not a header name a rule may set"},
		{"ErrUnknownField", "webhook: {url: 'http://x', retries: 3}", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := handlers.ParseRules("rules.yaml", []byte("handlers:\n  - name: h\n    on: users.>\n    "+tc.body+"\n"),
				handlers.WithGetenv(func(k string) string {
					if k == "HOOK_SECRET" {
						return "x"
					}
					return ""
				}))
			if !errors.Is(err, handlers.ErrInvalidRules) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidRules with %q", err, tc.want)
			}
		})
	}
	t.Run("OK", func(t *testing.T) {
		rules, err := handlers.ParseRules("rules.yaml", []byte("handlers:\n  - name: h\n    on: users.>\n    webhook: {url: 'https://x/hook', secret_file: "+secretFile+", signature_header: X-Sig, headers: {Authorization: Bearer t}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		w := rules[0].Webhook
		if w == nil || !w.Signed() || w.SignatureHeader != "X-Sig" || w.Timeout != handlers.DefaultWebhookTimeout || len(rules[0].Backoff) == 0 {
			t.Fatalf("rule: %+v, webhook %+v", rules[0], w)
		}
		req, err := w.Request(context.Background(), jetsource.Event{ID: "1", Subject: subjects.MustParse("users.a.b.added"), Data: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		if req.Header.Get("X-Sig") != handlers.Sign([]byte("from-file"), []byte(`{}`)) || req.Header.Get("Authorization") != "Bearer t" {
			t.Fatalf("headers %v", req.Header)
		}
	})
}
