// Command webhookreceiver is a merchant's receiver of recoup's outbound
// webhooks: it checks each message's Standard Webhooks signature with the
// endpoint's secret, refuses anything unsigned, tampered with or stale
// (400), and acknowledges the rest (204) after logging them.
//
// recoup signs every message with the secret shown once when the endpoint
// was created (POST /api/webhook-endpoints): the webhook-signature header
// holds v1,<base64 HMAC-SHA256 of "webhook-id.webhook-timestamp.body">.
// The Standard Webhooks library checks it and refuses timestamps more
// than five minutes away from now, so that a captured message cannot be
// replayed later. recoup delivers at least once and keeps the webhook-id
// across attempts: a receiver whose work is not idempotent remembers the
// ids it has handled. Environment:
//
//	RECOUP_WEBHOOK_SECRET  the endpoint's secret, whsec_… (required)
//	ADDR                   listen address (default 127.0.0.1:8000)
//
// Try it, with the receiver reachable by recoup at https://…/webhooks/recoup:
//
//	RECOUP_WEBHOOK_SECRET=whsec_… go run ./examples/webhookreceiver
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// maxBody is the largest message read: recoup's are a few hundred bytes.
const maxBody = 64 << 10

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "webhookreceiver:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, when set, receives the address it
// listens on.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	secret := getenv("RECOUP_WEBHOOK_SECRET")
	if secret == "" {
		return errors.New("RECOUP_WEBHOOK_SECRET is not set: give the whsec_… secret shown when the endpoint was created")
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("RECOUP_WEBHOOK_SECRET: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", cmp.Or(getenv("ADDR"), "127.0.0.1:8000"))
	if err != nil {
		return err
	}
	if ready != nil {
		ready <- ln.Addr().String()
	}
	srv := &http.Server{Handler: newHandler(wh, log), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = srv.Shutdown(shutdown)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// event is the body of every recoup message.
type event struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// newHandler receives recoup's messages at POST /webhooks/recoup.
func newHandler(wh *standardwebhooks.Webhook, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/recoup", func(w http.ResponseWriter, r *http.Request) {
		// The signature covers the exact bytes sent: read them all
		// before anything is decoded.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body unreadable or too large", http.StatusBadRequest)
			return
		}
		if err := wh.Verify(body, r.Header); err != nil {
			log.Warn("refused a message", "webhook_id", r.Header.Get(standardwebhooks.HeaderWebhookID), "error", err)
			http.Error(w, "invalid or stale signature", http.StatusBadRequest)
			return
		}
		var ev event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "body is not a recoup message", http.StatusBadRequest)
			return
		}
		// A real receiver acts here, or better queues the work and
		// answers at once: recoup gives up on an attempt after 10 s.
		log.Info("received", "webhook_id", r.Header.Get(standardwebhooks.HeaderWebhookID), "type", ev.Type,
			"timestamp", ev.Timestamp, "data", string(ev.Data))
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
