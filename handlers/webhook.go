package handlers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jetsource/jetsource"
	"github.com/jetsource/jetsource/subscriber"
)

// Defaults of a webhook rule: the time limit of one attempt and the
// header that carries the signature.
const (
	DefaultWebhookTimeout   = 10 * time.Second
	DefaultSignatureHeader  = "X-Jetsource-Signature"
	maxWebhookResponseBytes = 64 << 10
)

// ErrWebhook is a delivery of a webhook rule that failed: the receiver
// could not be reached, did not answer within the timeout, or answered
// with a status other than 2xx.
var ErrWebhook = errors.New("handlers: webhook delivery failed")

// DefaultWebhookBackoff returns the retry schedule of a webhook rule that
// sets no backoff: exponential, from 1s doubling to 1m (1s, 2s, 4s, 8s,
// 16s, 32s, 1m, the last repeating).
func DefaultWebhookBackoff() []time.Duration {
	var out []time.Duration
	for d := time.Second; d < time.Minute; d *= 2 {
		out = append(out, d)
	}
	return append(out, time.Minute)
}

// Webhook is the action of a webhook rule: it POSTs each matching event
// to URL as a CloudEvent in the binary mode of the HTTP binding: the
// attributes as ce-* headers (ce-id, ce-source, ce-type, ce-subject,
// ce-time, the extensions; values percent-encoded), the data content
// type as Content-Type, the data as the body.
//
// One delivery of the event to the rule's worker is one attempt, limited
// to Timeout. A 2xx answer acknowledges the event. Any other answer, a
// timeout or a connection failure fails the attempt, and the worker
// delivers the event again after the rule's backoff
// ([DefaultWebhookBackoff] unless the rule sets one); the attempt that
// reaches the rule's max_deliver stores it in the dead-letter stream.
// A 4xx answer other than 408, 425 and 429 is not retried: the event is
// dead-lettered at once. Nothing sleeps in a worker's slot, and a
// receiver that hangs holds one event (of one aggregate) for at most
// Timeout: the other lanes go on.
//
// With a secret, each request carries SignatureHeader:
// "sha256=" followed by the hex HMAC-SHA256 of the body with the secret.
// The secret is read when the rules are loaded and never logged.
type Webhook struct {
	// URL is the receiver (http or https).
	URL string
	// Timeout limits one attempt.
	Timeout time.Duration
	// SignatureHeader names the signature header (when there is a
	// secret).
	SignatureHeader string
	// Headers are sent with every request (such as an Authorization).
	Headers map[string]string

	secret []byte
	client *http.Client
}

// Signed reports whether requests carry a signature.
func (w *Webhook) Signed() bool { return len(w.secret) > 0 }

// Sign returns the signature header value of a body with the secret:
// "sha256=<hex HMAC-SHA256>".
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Request returns the HTTP request that delivers e.
func (w *Webhook) Request(ctx context.Context, e jetsource.Event) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(e.Data))
	if err != nil {
		return nil, err
	}
	for k, vs := range jetsource.EncodeHeader(e) {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if !e.Subject.IsZero() {
		req.Header.Set(jetsource.HeaderSubject, jetsource.PercentEncode(e.Subject.String()))
	}
	for k, v := range w.Headers {
		req.Header.Set(k, v)
	}
	if len(w.secret) > 0 {
		req.Header.Set(w.SignatureHeader, Sign(w.secret, e.Data))
	}
	return req, nil
}

// deliver makes one attempt. A nil error means the receiver took the
// event.
func (w *Webhook) deliver(ctx context.Context, rule string, e jetsource.Event) error {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := w.Request(ctx, e)
	if err != nil {
		return subscriber.Permanent(fmt.Errorf("rule %s: %w: %w", rule, ErrWebhook, err))
	}
	client := w.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("rule %s: %w: event %s: no answer within %v", rule, ErrWebhook, e.ID, w.Timeout)
		}
		return fmt.Errorf("rule %s: %w: event %s: %w", rule, ErrWebhook, e.ID, redactURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookResponseBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("rule %s: %w: event %s: the receiver answered %s", rule, ErrWebhook, e.ID, resp.Status)
	switch c := resp.StatusCode; {
	case c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooEarly && c != http.StatusTooManyRequests:
		return subscriber.Permanent(err)
	}
	return err
}

// redactURL keeps the query of the URL (where tokens hide) out of an
// error.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			u.RawQuery, u.User = "", nil
			return fmt.Errorf("%s %s: %w", ue.Op, u.String(), ue.Err)
		}
	}
	return err
}

// webhook parses the webhook field of a rule:
//
//	webhook:
//	  url: https://hooks.example.com/users
//	  timeout: 5s                   # one attempt (default 10s)
//	  secret_env: USERS_HOOK_SECRET # or secret_file: ./hook.secret
//	  signature_header: X-Signature # default X-Jetsource-Signature
//	  headers: {X-Team: users}      # optional, sent as they are
func (p *ruleParser) webhook(r *Rule, n *yaml.Node, field string) {
	if n.Kind != yaml.MappingNode {
		p.failf(n, field, "want a mapping with url, got %s", nodeKind(n))
		return
	}
	w := &Webhook{Timeout: DefaultWebhookTimeout, SignatureHeader: DefaultSignatureHeader, client: &http.Client{}}
	var urlNode, envNode, fileNode *yaml.Node
	p.fields(n, field, []string{"url", "timeout", "secret_env", "secret_file", "signature_header", "headers"}, func(key string, k, v *yaml.Node) {
		f := field + "." + key
		switch key {
		case "url":
			urlNode = v
			if s, ok := p.str(v, f); ok {
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					p.failf(v, f, "want an http or https URL, got %q", s)
					return
				}
				w.URL = s
			}
		case "timeout":
			if s, ok := p.str(v, f); ok {
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 {
					p.failf(v, f, "want a positive duration such as 5s, got %q", s)
					return
				}
				w.Timeout = d
			}
		case "secret_env":
			envNode = v
			if s, ok := p.str(v, f); ok {
				getenv := p.cfg.getenv
				if getenv == nil {
					getenv = os.Getenv
				}
				if sec := getenv(s); sec != "" {
					w.secret = []byte(sec)
				} else {
					p.failf(v, f, "the environment variable %s is empty or not set", s)
				}
			}
		case "secret_file":
			fileNode = v
			if s, ok := p.str(v, f); ok {
				path := s
				if !filepath.IsAbs(path) {
					path = filepath.Join(filepath.Dir(p.file), path)
				}
				b, err := os.ReadFile(path)
				sec := strings.TrimRight(string(b), "\r\n")
				switch {
				case err != nil:
					p.failf(v, f, "cannot read the secret: %v", err)
				case sec == "":
					p.failf(v, f, "the secret file %s is empty", path)
				default:
					w.secret = []byte(sec)
				}
			}
		case "signature_header":
			if s, ok := p.str(v, f); ok {
				if !validHeaderName(s) {
					p.failf(v, f, "%q is not a valid HTTP header name", s)
					return
				}
				w.SignatureHeader = s
			}
		case "headers":
			if v.Kind != yaml.MappingNode {
				p.failf(v, f, "want a mapping of header names to values, got %s", nodeKind(v))
				return
			}
			w.Headers = map[string]string{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				hk, hv := v.Content[i], resolveAlias(v.Content[i+1])
				hf := f + "." + hk.Value
				if !validHeaderName(hk.Value) || strings.HasPrefix(strings.ToLower(hk.Value), jetsource.HeaderPrefix) {
					p.failf(hk, hf, "%q is not a header name a rule may set (ce-* are the event's)", hk.Value)
					continue
				}
				if s, ok := p.str(hv, hf); ok {
					if strings.ContainsAny(s, "\r\n") {
						p.failf(hv, hf, "a header value holds no line break")
						continue
					}
					w.Headers[hk.Value] = s
				}
			}
		}
	})
	if urlNode == nil {
		p.failf(n, field+".url", "missing")
	}
	if envNode != nil && fileNode != nil {
		p.failf(fileNode, field+".secret_file", "give secret_env or secret_file, not both")
	}
	r.Webhook = w
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// WithGetenv sets how a webhook rule's secret_env is read (default
// [os.Getenv]).
func WithGetenv(getenv func(string) string) RuleOption {
	return func(c *ruleConfig) error {
		if getenv == nil {
			return fmt.Errorf("%w: nil getenv", ErrInvalidOption)
		}
		c.getenv = getenv
		return nil
	}
}

// reactWebhook delivers a matching event to the rule's webhook.
func (r *Rule) reactWebhook(ctx context.Context, e jetsource.Event) (Outcome, error) {
	return Outcome{Matched: true}, r.Webhook.deliver(ctx, r.Name, e)
}
