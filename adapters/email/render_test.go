package email_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/email"
	"github.com/recoupdev/recoup/domain"
)

func notification(typ domain.TaskType) domain.Notification {
	id := domain.TaskID(domain.NewID())
	return domain.Notification{
		Type: typ, TaskID: id, Attempt: 1, To: "jenny@example.com", MerchantName: "Acme Books",
		Amount: 2000, Currency: "usd", HostedInvoiceURL: "https://invoice.stripe.com/i/acct_1/test_123?s=ap",
		InvoiceID: "in_123", ChargeID: "ch_123", IdempotencyKey: domain.AttemptKey(id, 1),
	}
}

func TestRender(t *testing.T) {
	r, err := email.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		typ     domain.TaskType
		subject string
	}{
		{domain.TypeNotifyPaymentFailed, "Your payment of $20.00 to Acme Books did not go through"},
		{domain.TypeNotifyActionRequired, "Action required: confirm your payment of $20.00 to Acme Books"},
		{domain.TypeNotifyChargeFailed, "Your payment of $20.00 to Acme Books was declined"},
		{domain.TypeNotifyReminder, "Reminder: your payment of $20.00 to Acme Books is still due"},
	}
	for _, c := range cases {
		t.Run(string(c.typ), func(t *testing.T) {
			is := is.New(t)
			n := notification(c.typ)
			msg, err := r.Render(n)
			is.NoErr(err)                                                                                   // render
			is.Equal(msg.To, "jenny@example.com")                                                           // recipient
			is.Equal(msg.Subject, c.subject)                                                                // subject
			is.True(strings.Contains(msg.Text, n.HostedInvoiceURL))                                         // text has the link
			is.True(strings.Contains(msg.Text, "$20.00"))                                                   // text has the amount
			is.True(strings.Contains(msg.Text, "Acme Books"))                                               // text has the merchant
			is.True(strings.Contains(msg.HTML, `href="https://invoice.stripe.com/i/acct_1/test_123?s=ap"`)) // html links the invoice
			is.True(strings.Contains(msg.HTML, "<strong>$20.00</strong>"))                                  // html has the amount
			is.True(!strings.Contains(msg.Text, "<no value>"))                                              // every field filled
		})
	}

	t.Run("html escapes and refuses unsafe links", func(t *testing.T) {
		is := is.New(t)
		n := notification(domain.TypeNotifyPaymentFailed)
		n.MerchantName = `<script>alert("x")</script>`
		n.HostedInvoiceURL = "javascript:alert(1)"
		msg, err := r.Render(n)
		is.NoErr(err)                                         // render
		is.True(!strings.Contains(msg.HTML, "<script>"))      // merchant name escaped
		is.True(!strings.Contains(msg.HTML, "javascript:"))   // unsafe link neutralised
		is.True(strings.Contains(msg.HTML, "&lt;script&gt;")) // escaped form present
	})

	t.Run("charge without invoice has no link", func(t *testing.T) {
		is := is.New(t)
		n := notification(domain.TypeNotifyChargeFailed)
		n.HostedInvoiceURL, n.InvoiceID = "", ""
		msg, err := r.Render(n)
		is.NoErr(err)                                       // render
		is.True(!strings.Contains(msg.HTML, "href"))        // no link
		is.True(strings.Contains(msg.Text, "card details")) // advice instead
	})

	t.Run("subject stays on one line", func(t *testing.T) {
		is := is.New(t)
		n := notification(domain.TypeNotifyPaymentFailed)
		n.MerchantName = "Acme\r\nBcc: victim@example.com"
		msg, err := r.Render(n)
		is.NoErr(err)                                      // render
		is.True(!strings.ContainsAny(msg.Subject, "\r\n")) // no header injection
	})

	t.Run("the update link is the one call to action", func(t *testing.T) {
		is := is.New(t)
		for _, typ := range []domain.TaskType{domain.TypeNotifyPaymentFailed, domain.TypeNotifyReminder, domain.TypeNotifyActionRequired, domain.TypeNotifyCardExpiring} {
			n := notification(typ)
			n.UpdateURL = "https://recoup.example/update/tok_123"
			msg, err := r.Render(n)
			is.NoErr(err)
			is.True(strings.Contains(msg.Text, n.UpdateURL))              // in the text
			is.Equal(strings.Count(msg.HTML, "href="), 1)                 // one link in the HTML
			is.True(strings.Contains(msg.HTML, `href="`+n.UpdateURL+`"`)) // and it is the update link
			is.True(!strings.Contains(msg.Text, n.HostedInvoiceURL))      // instead of the invoice
		}
	})

	t.Run("a hard decline asks for a new card", func(t *testing.T) {
		is := is.New(t)
		n := notification(domain.TypeNotifyPaymentFailed)
		n.NewCardNeeded = true
		msg, err := r.Render(n)
		is.NoErr(err)
		is.Equal(msg.Subject, "Please update your card for Acme Books")
		is.True(strings.Contains(msg.Text, "add another card"))
		is.True(strings.Contains(msg.HTML, "Add a new card"))
	})

	t.Run("an expiring card", func(t *testing.T) {
		is := is.New(t)
		n := notification(domain.TypeNotifyCardExpiring)
		n.CardBrand, n.CardLast4, n.CardExpMonth, n.CardExpYear = "visa", "4242", 8, 2027
		msg, err := r.Render(n)
		is.NoErr(err)
		is.Equal(msg.Subject, "Your card for Acme Books expires soon")
		is.True(strings.Contains(msg.Text, "Visa card ending in 4242"))
		is.True(strings.Contains(msg.Text, "08/2027"))
	})

	t.Run("amounts in the currency's own format", func(t *testing.T) {
		is := is.New(t)
		n := notification(domain.TypeNotifyPaymentFailed)
		n.Amount, n.Currency = 5000, "jpy"
		msg, err := r.Render(n)
		is.NoErr(err)
		is.True(strings.Contains(msg.Subject, "¥5,000")) // a zero-decimal currency
	})

	t.Run("not an email task", func(t *testing.T) {
		is := is.New(t)
		_, err := r.Render(notification(domain.TypeRetryPayment))
		is.True(errors.Is(err, domain.ErrInvalid)) // retry_payment sends no email
	})
}

func TestLogNotifier(t *testing.T) {
	is := is.New(t)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	n := notification(domain.TypeNotifyActionRequired)
	is.NoErr(email.NewLogNotifier(log).Notify(context.Background(), n)) // notify

	out := buf.String()
	is.True(strings.Contains(out, `"level":"INFO"`))                      // logged at INFO
	is.True(strings.Contains(out, `"to":"j***@example.com"`))             // recipient field, masked
	is.True(!strings.Contains(out, "jenny@example.com"))                  // never the whole address
	is.True(strings.Contains(out, `"subject":"Action required: confirm`)) // subject field
	is.True(strings.Contains(out, `"task_id":"`+string(n.TaskID)+`"`))    // task field
	is.True(strings.Contains(out, n.HostedInvoiceURL))                    // body with link

	n.To = ""
	err := email.NewLogNotifier(log).Notify(context.Background(), n)
	is.True(errors.Is(err, domain.ErrInvalid)) // no recipient is permanent
}
