package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	var out bytes.Buffer
	srv := httptest.NewServer(handler(&out, []byte("s3cret"), "X-Jetsource-Signature"))
	defer srv.Close()
	post := func(body, sig string, ce bool) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		if ce {
			req.Header.Set("ce-id", "1")
			req.Header.Set("ce-type", "customers.imported")
			req.Header.Set("ce-subject", "customers.1.imported")
		}
		req.Header.Set("X-Jetsource-Signature", sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(`{"a":1}`))
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if code := post(`{"a":1}`, good, true); code != http.StatusNoContent {
		t.Errorf("signed event: %d", code)
	}
	if code := post(`{"a":1}`, "sha256=00", true); code != http.StatusUnauthorized {
		t.Errorf("bad signature: %d", code)
	}
	if code := post(`{"a":1}`, good, false); code != http.StatusBadRequest {
		t.Errorf("no CloudEvent: %d", code)
	}
	if got, want := out.String(), "customers.imported customers.1.imported {\"a\":1}\n"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
}
