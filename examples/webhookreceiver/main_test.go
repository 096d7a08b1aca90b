package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoupdev/recoup/adapters/outbound"
	"github.com/recoupdev/recoup/domain"
)

// start runs the program with the endpoint's secret and returns its
// webhook URL; it stops at the end of the test.
func start(t *testing.T, secret string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	env := map[string]string{"RECOUP_WEBHOOK_SECRET": secret, "ADDR": "127.0.0.1:0"}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }, io.Discard, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return "http://" + addr + "/webhooks/recoup"
}

// endpoint is a merchant's endpoint at url, as recoup creates it.
func endpoint(t *testing.T, url string) domain.WebhookEndpoint {
	t.Helper()
	e, err := domain.NewWebhookEndpoint(domain.MerchantID(domain.NewID()), url, []string{"*"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestReceivesWhatRecoupSends: recoup's own sender, the receiver's 204.
func TestReceivesWhatRecoupSends(t *testing.T) {
	is := is.New(t)
	probe := endpoint(t, "https://example.com/")
	url := start(t, probe.EncodedSecret())
	payload, err := domain.OutboundPayload(domain.OutboundInvoiceRecovered, time.Now(),
		domain.RecoveredInvoice{InvoiceID: "in_123", Amount: 2000, Currency: "usd"})
	is.NoErr(err)
	d := domain.Delivery{ID: domain.NewDeliveryID(), URL: url, Secret: probe.Secret, Payload: payload}

	code, err := outbound.New(outbound.Config{AllowPrivate: true}).Send(context.Background(), d, time.Now())
	is.NoErr(err)
	is.Equal(code, http.StatusNoContent) // acknowledged
}

func TestRefusesBadSignatures(t *testing.T) {
	e := endpoint(t, "https://example.com/")
	url := start(t, e.EncodedSecret())
	good, err := standardwebhooks.NewWebhook(e.EncodedSecret())
	if err != nil {
		t.Fatal(err)
	}
	other, err := standardwebhooks.NewWebhookRaw([]byte("another endpoint's secret"))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"task.failed","timestamp":"2026-01-02T03:04:05Z","data":{"id":"t"}}`)
	now := time.Now()
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections) // first, so that the program's shutdown waits for no connection

	for _, c := range []struct {
		name   string
		signer *standardwebhooks.Webhook
		at     time.Time
		sent   []byte // the body sent; nil: the one signed
		header func(http.Header)
		want   int
	}{
		{name: "good", signer: good, at: now, want: http.StatusNoContent},
		{name: "a minute old", signer: good, at: now.Add(-time.Minute), want: http.StatusNoContent},
		{name: "tampered body", signer: good, at: now, sent: bytes.Replace(body, []byte("failed"), []byte("succeeded"), 1), want: http.StatusBadRequest},
		{name: "another secret", signer: other, at: now, want: http.StatusBadRequest},
		{name: "stale", signer: good, at: now.Add(-10 * time.Minute), want: http.StatusBadRequest},
		{name: "from the future", signer: good, at: now.Add(10 * time.Minute), want: http.StatusBadRequest},
		{name: "timestamp changed", signer: good, at: now, want: http.StatusBadRequest,
			header: func(h http.Header) { h.Set("webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)) }},
		{name: "id changed", signer: good, at: now, want: http.StatusBadRequest,
			header: func(h http.Header) { h.Set("webhook-id", "msg_other") }},
		{name: "unsigned", signer: good, at: now, want: http.StatusBadRequest,
			header: func(h http.Header) { h.Del("webhook-signature") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			id := string(domain.NewDeliveryID())
			sig, err := c.signer.Sign(id, c.at, body)
			is.NoErr(err)
			sent := body
			if c.sent != nil {
				sent = c.sent
			}
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(sent))
			is.NoErr(err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("webhook-id", id)
			req.Header.Set("webhook-timestamp", strconv.FormatInt(c.at.Unix(), 10))
			req.Header.Set("webhook-signature", sig)
			if c.header != nil {
				c.header(req.Header)
			}
			res, err := client.Do(req)
			is.NoErr(err)
			res.Body.Close()
			is.Equal(res.StatusCode, c.want)
		})
	}
}

func TestNeedsTheSecret(t *testing.T) {
	for _, secret := range []string{"", "whsec_not base64!"} {
		t.Run(secret, func(t *testing.T) {
			is := is.New(t)
			err := run(context.Background(), func(k string) string {
				if k == "RECOUP_WEBHOOK_SECRET" {
					return secret
				}
				return ""
			}, io.Discard, nil)
			is.True(err != nil)                                             // it does not start
			is.True(strings.Contains(err.Error(), "RECOUP_WEBHOOK_SECRET")) // and names the setting
		})
	}
}
