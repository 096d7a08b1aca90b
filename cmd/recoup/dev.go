package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/recoupdev/recoup/internal/stripetest"
)

// runDev serves development: `recoup dev send-event` signs a realistic
// Stripe event (API version 2023-10-16) with the configured webhook secret
// and posts it to a running server, printing the answer.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "send-event" {
		return &usageError{"usage: recoup dev send-event --type T --account acct_… [flags]"}
	}
	fs := flag.NewFlagSet("dev send-event", flag.ContinueOnError)
	fs.SetOutput(stderr)
	typ := fs.String("type", "invoice.payment_failed", "event type")
	account := fs.String("account", "", "connected account the event is about (acct_…)")
	target := fs.String("url", "http://localhost:8080/webhooks/stripe", "webhook endpoint")
	eventID := fs.String("id", "", "event id (default: a new evt_…); repeat one to see the idempotency lock")
	invoice := fs.String("invoice", "", "invoice id (default: a new in_…)")
	subscription := fs.String("subscription", "", "subscription id (default: a new sub_…)")
	attempt := fs.Int("attempt", 1, "the invoice's attempt_count")
	amount := fs.Int64("amount", 2000, "amount due, in minor units")
	currency := fs.String("currency", "usd", "currency")
	email := fs.String("email", "jenny.rosen@example.com", "customer email")
	livemode := fs.Bool("livemode", false, "livemode of the event")
	if err := fs.Parse(args[1:]); err != nil {
		return &usageError{err.Error()}
	}
	if *account == "" {
		return &usageError{"dev send-event: --account acct_… is required"}
	}
	cfg, err := loadConfig(getenv, true)
	if err != nil {
		return err
	}
	inv := stripetest.Invoice{
		ID: *invoice, Customer: stripetest.NewID("cus_"), CustomerEmail: *email,
		AmountDue: *amount, Currency: *currency, AttemptCount: *attempt, Subscription: *subscription,
		HostedInvoiceURL: "https://invoice.stripe.com/i/acct_test/test", Livemode: *livemode,
	}
	var object any = inv
	switch {
	case strings.HasPrefix(*typ, "charge."):
		object = stripetest.Charge{Customer: inv.Customer, BillingEmail: *email, Amount: *amount, Currency: *currency, Livemode: *livemode}
	case strings.HasPrefix(*typ, "customer.subscription."):
		object = stripetest.Subscription{ID: *subscription, Customer: inv.Customer, Currency: *currency, Livemode: *livemode}
	case *typ == "invoice.paid":
		inv.Status, inv.AmountPaid = "paid", *amount
		object = inv
	}
	payload := stripetest.Event{ID: *eventID, Type: *typ, Account: *account, Livemode: *livemode, Object: object}.JSON()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *target, bytes.NewReader(payload))
	if err != nil {
		return &usageError{"dev send-event: bad --url: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", stripetest.Sign(payload, cfg.WebhookSecrets[0], time.Now()))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("send event: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Fprintf(stdout, "%s %s\n%s\n", resp.Proto, resp.Status, bytes.TrimSpace(body))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("the server answered %s", resp.Status)
	}
	return nil
}
