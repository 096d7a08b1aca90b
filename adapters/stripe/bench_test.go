package stripe_test

import (
	"testing"
	"time"

	recoupstripe "github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// BenchmarkVerifyEvent measures signature check plus decoding of a signed
// invoice.payment_failed event, with 8 parallel senders: the first step of
// the webhook path (see BenchmarkWebhook in adapters/httpapi).
func BenchmarkVerifyEvent(b *testing.B) {
	v, err := recoupstripe.NewVerifier([]string{oldSecret, secret})
	if err != nil {
		b.Fatal(err)
	}
	payload := stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Object: stripetest.Invoice{
		ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, AttemptCount: 1,
	}}.JSON()
	header := stripetest.Sign(payload, secret, time.Now())
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.VerifyEvent(payload, header); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
