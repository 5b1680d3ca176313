// Command webhook-receiver is a small HTTP receiver for jetsource's
// webhook rules: it prints one line per CloudEvent POSTed to it (binary
// mode: ce-* headers, the data as the body) and, given a secret, checks
// the HMAC-SHA256 signature of each body.
//
//	go run ./examples/webhook-receiver --listen 127.0.0.1:8099
//	# customers.imported customers.1.imported {"country":"DE",...}
//
// It answers 204 to an event it printed, 401 to a bad signature and 400 to
// a request that is no binary-mode CloudEvent. The first line it prints is
// the address it listens on.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8099", "address to listen on (port 0: any free port)")
	secretEnv := flag.String("secret-env", "", "environment variable holding the HMAC secret (none: signatures are not checked)")
	header := flag.String("signature-header", "X-Jetsource-Signature", "header carrying sha256=<hex HMAC of the body>")
	flag.Parse()
	var secret []byte
	if *secretEnv != "" {
		if secret = []byte(os.Getenv(*secretEnv)); len(secret) == 0 {
			log.Fatalf("webhook-receiver: %s is empty or not set", *secretEnv)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("webhook-receiver: %v", err)
	}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	srv := &http.Server{Handler: handler(os.Stdout, secret, *header)}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("webhook-receiver: %v", err)
	}
}

// handler prints each event as "TYPE SUBJECT DATA" on out.
func handler(out io.Writer, secret []byte, sigHeader string) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST a CloudEvent", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.Header.Get("ce-id") == "" || r.Header.Get("ce-type") == "" {
			http.Error(w, "not a binary-mode CloudEvent: ce-id and ce-type are required", http.StatusBadRequest)
			return
		}
		if secret != nil {
			mac := hmac.New(sha256.New, secret)
			mac.Write(body)
			want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
			if !hmac.Equal([]byte(r.Header.Get(sigHeader)), []byte(want)) {
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
		}
		mu.Lock()
		fmt.Fprintf(out, "%s %s %s\n", r.Header.Get("ce-type"), r.Header.Get("ce-subject"), strings.TrimSpace(string(body)))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
}
