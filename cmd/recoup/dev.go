package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/recoupdev/recoup/internal/stripetest"
)

var devHelp = cmdHelp{
	usage: "recoup dev send-event --type T --account acct_… [flags]",
	about: `
Development helpers.

  send-event   sign a realistic Stripe test event with STRIPE_WEBHOOK_SECRET
               and post it to a running server, printing the answer

recoup dev send-event --help says more.`,
	env:      devEnv,
	required: []string{"STRIPE_WEBHOOK_SECRET"},
}

var devSendEventHelp = cmdHelp{
	usage: "recoup dev send-event --type T --account acct_… [flags]",
	about: `
Builds a realistic Stripe event (API version 2023-10-16: the complete object,
indented as Stripe sends it), signs it with the first secret of
STRIPE_WEBHOOK_SECRET and posts it to a running recoup, then prints the
answer. The event goes to --url, by default the webhook of the server that
RECOUP_ADDR names on this machine (:9090 → http://localhost:9090/webhooks/stripe).

Types with an effect: invoice.payment_failed, invoice.payment_action_required,
charge.failed (outside any invoice, or of --invoice when given: then the
answer is no_action), invoice.paid, invoice.voided,
invoice.marked_uncollectible (with --invoice to name the invoice),
customer.subscription.deleted (--subscription); any other type is
acknowledged and ignored. Repeat an --id to see the idempotency lock.`,
	env:      devEnv,
	required: []string{"STRIPE_WEBHOOK_SECRET"},
}

// runDev serves development: `recoup dev send-event` signs a realistic
// Stripe event (API version 2023-10-16) with the configured webhook secret
// and posts it to a running server, printing the answer.
func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		devHelp.write(stdout, nil)
		return nil
	}
	if len(args) == 0 || args[0] != "send-event" {
		fmt.Fprintf(stderr, "usage: %s\n", devHelp.usage)
		if len(args) == 0 {
			return &usageError{"dev: which one? send-event"}
		}
		return &usageError{fmt.Sprintf("dev: unknown command %q", args[0])}
	}
	fs := flag.NewFlagSet("dev send-event", flag.ContinueOnError)
	typ := fs.String("type", "invoice.payment_failed", "event type")
	account := fs.String("account", "", "connected account the event is about (acct_…; required)")
	target := fs.String("url", "", "webhook endpoint (default: http://localhost:<port of RECOUP_ADDR>/webhooks/stripe, or its host if it names one)")
	eventID := fs.String("id", "", "event id (default: a new evt_…); repeat one to see the idempotency lock")
	invoice := fs.String("invoice", "", "invoice id (default: a new in_…); with --type charge.failed, the invoice the charge belongs to")
	subscription := fs.String("subscription", "", "subscription id (default: a new sub_…)")
	attempt := fs.Int("attempt", 1, "the invoice's attempt_count")
	amount := fs.Int64("amount", 2000, "amount due, in minor units")
	currency := fs.String("currency", "usd", "currency")
	email := fs.String("email", "jenny.rosen@example.com", "customer email")
	livemode := fs.Bool("livemode", false, "livemode of the event")
	if ok, err := parseFlags(fs, devSendEventHelp, args[1:], stdout, stderr); !ok {
		return err
	}
	if *account == "" {
		return &usageError{"dev send-event: --account acct_… is required"}
	}
	cfg, err := loadConfig(getenv, true)
	if err != nil {
		return err
	}
	if *target == "" {
		*target = webhookURL(cfg.Addr)
	}
	inv := stripetest.Invoice{
		ID: *invoice, Customer: stripetest.NewID("cus_"), CustomerEmail: *email,
		AmountDue: *amount, Currency: *currency, AttemptCount: *attempt, Subscription: *subscription,
		HostedInvoiceURL: "https://invoice.stripe.com/i/acct_test/test", Livemode: *livemode,
	}
	var object any = inv
	switch {
	case strings.HasPrefix(*typ, "charge."):
		// With --invoice the charge is that invoice's payment, which the
		// policy leaves to the invoice events (no_action).
		object = stripetest.Charge{Customer: inv.Customer, Invoice: *invoice, BillingEmail: *email, Amount: *amount, Currency: *currency, Livemode: *livemode}
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

// webhookURL is the webhook endpoint of a server listening on addr (a
// checked host:port) as seen from this machine: a wildcard or empty host
// is reached as localhost.
func webhookURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "", "8080"
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/webhooks/stripe"
}
