package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestWebhookURLFromRecoupAddr(t *testing.T) {
	cases := map[string]string{
		":8080":          "http://localhost:8080/webhooks/stripe",
		":9090":          "http://localhost:9090/webhooks/stripe",
		"127.0.0.1:9090": "http://127.0.0.1:9090/webhooks/stripe",
		"0.0.0.0:9090":   "http://localhost:9090/webhooks/stripe",
		"[::]:9090":      "http://localhost:9090/webhooks/stripe",
		"[::1]:9090":     "http://[::1]:9090/webhooks/stripe",
		"recoup.lan:80":  "http://recoup.lan:80/webhooks/stripe",
	}
	for addr, want := range cases {
		if got := webhookURL(addr); got != want {
			t.Errorf("webhookURL(%q) = %q, want %q", addr, got, want)
		}
	}
}

// receivedEvent is what a stand-in server saw of one delivery.
type receivedEvent struct {
	path      string
	signature string
	body      []byte
}

// standIn is a webhook endpoint that records what it receives and answers
// as recoup does.
func standIn(t *testing.T) (*httptest.Server, chan receivedEvent) {
	got := make(chan receivedEvent, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- receivedEvent{r.URL.Path, r.Header.Get("Stripe-Signature"), body}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"processed":true,"action":"no_action","tasks":[]}`)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// send-event without --url posts to the server RECOUP_ADDR names: its port
// on localhost when the address has no host, its host when it has one.
func TestSendEventDefaultsToRecoupAddr(t *testing.T) {
	srv, got := standIn(t)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{":" + port, "127.0.0.1:" + port} {
		t.Run(addr, func(t *testing.T) {
			is := is.New(t)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"recoup", "dev", "send-event", "--account", "acct_1Dev"},
				env("STRIPE_WEBHOOK_SECRET", "whsec_dev", "RECOUP_ADDR", addr), &stdout, &stderr)
			is.NoErr(err) // the event reached the server RECOUP_ADDR names
			r := <-got
			is.Equal(r.path, "/webhooks/stripe")
			is.True(strings.HasPrefix(stdout.String(), "HTTP/1.1 200 OK"))
		})
	}
}

// With --type charge.failed, --invoice makes the charge that invoice's
// payment (the policy's no_action case); without it the charge has none.
func TestSendEventChargeOfAnInvoice(t *testing.T) {
	srv, got := standIn(t)
	charge := func(args ...string) map[string]any {
		t.Helper()
		is := is.New(t)
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"recoup", "dev", "send-event", "--url", srv.URL + "/webhooks/stripe",
			"--type", "charge.failed", "--account", "acct_1Dev"}, args...), env("STRIPE_WEBHOOK_SECRET", "whsec_dev"), &stdout, &stderr)
		is.NoErr(err)
		var ev struct {
			Data struct {
				Object map[string]any `json:"object"`
			} `json:"data"`
		}
		is.NoErr(json.Unmarshal((<-got).body, &ev))
		is.Equal(ev.Data.Object["object"], "charge")
		return ev.Data.Object
	}
	is := is.New(t)
	is.Equal(charge("--invoice", "in_1Owner")["invoice"], "in_1Owner") // the charge belongs to the invoice
	is.Equal(charge()["invoice"], nil)                                 // without --invoice, to none
}
