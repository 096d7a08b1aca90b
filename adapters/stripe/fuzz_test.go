package stripe_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	recoupstripe "github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// The fuzz targets run on a fixed clock so that the signed seeds, here and
// in testdata/fuzz, stay inside the tolerance forever.
const fuzzSecret = "whsec_fuzz_0123456789abcdef"

var fuzzNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fuzzClock struct{}

func (fuzzClock) Now() time.Time { return fuzzNow }

const fuzzMerchant = domain.MerchantID("6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c")

// fuzzEvents are realistic events of every handled type and a few others,
// with fixed ids so that the seeds do not change from run to run.
func fuzzEvents() [][]byte {
	next := fuzzNow.Add(72 * time.Hour)
	ev := func(id, typ string, obj any) []byte {
		return stripetest.Event{ID: id, Type: typ, Account: "acct_fuzz", Created: fuzzNow, Object: obj}.JSON()
	}
	inv := stripetest.Invoice{
		ID: "in_fuzz", Customer: "cus_fuzz", CustomerEmail: "jenny@example.com", AmountDue: 2000,
		AttemptCount: 1, Subscription: "sub_fuzz", Charge: "ch_fuzz", HostedInvoiceURL: "https://invoice.stripe.com/i/fuzz",
	}
	retried := inv
	retried.NextPaymentAttempt = &next
	retried.AttemptCount = 2
	last := inv
	last.AttemptCount = 5
	paid := inv
	paid.Status = "paid"
	paid.AmountPaid = 2000
	return [][]byte{
		ev("evt_fuzz_failed", domain.EventInvoicePaymentFailed, inv),
		ev("evt_fuzz_retried", domain.EventInvoicePaymentFailed, retried),
		ev("evt_fuzz_last", domain.EventInvoicePaymentFailed, last),
		ev("evt_fuzz_action", domain.EventInvoicePaymentActionRequired, inv),
		ev("evt_fuzz_paid", domain.EventInvoicePaid, paid),
		ev("evt_fuzz_voided", domain.EventInvoiceVoided, inv),
		ev("evt_fuzz_uncollectible", domain.EventInvoiceMarkedUncollectible, inv),
		ev("evt_fuzz_charge", domain.EventChargeFailed, stripetest.Charge{ID: "ch_fuzz", Customer: "cus_fuzz", BillingEmail: "jenny@example.com", Amount: 1500}),
		ev("evt_fuzz_charge_invoice", domain.EventChargeFailed, stripetest.Charge{ID: "ch_fuzz2", Customer: "cus_fuzz", Invoice: "in_fuzz", Amount: 1500}),
		ev("evt_fuzz_sub", domain.EventCustomerSubscriptionDeleted, stripetest.Subscription{ID: "sub_fuzz", Customer: "cus_fuzz"}),
		ev("evt_fuzz_other", "customer.created", map[string]any{"object": "customer", "id": "cus_fuzz"}),
		ev("evt_fuzz_mismatch", domain.EventInvoicePaymentFailed, stripetest.Charge{ID: "ch_fuzz3"}),
		[]byte(`{"id":"evt_fuzz_min","object":"event","type":"invoice.paid","data":{"object":{"object":"invoice","id":"in_1"}}}`),
		[]byte(`{"id":"evt_fuzz_nodata","object":"event","type":"invoice.paid"}`),
		[]byte(`{"id":"evt_fuzz_badamount","object":"event","type":"invoice.payment_failed","data":{"object":{"object":"invoice","id":"in_1","amount_due":"lots"}}}`),
		[]byte(`{"object":"event"}`),
		[]byte(`[]`),
		[]byte(`null`),
		[]byte(``),
	}
}

func newFuzzVerifier(f *testing.F) *recoupstripe.Verifier {
	f.Helper()
	v, err := recoupstripe.NewVerifier([]string{fuzzSecret, "whsec_fuzz_previous"}, recoupstripe.WithClock(fuzzClock{}))
	if err != nil {
		f.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// FuzzVerifyEvent throws arbitrary Stripe-Signature headers and bodies at
// the verifier. It must never panic; a rejection wraps ErrInvalid; an
// acceptance means the header really carries a valid v1 signature of the
// body by a configured secret at a timestamp within the tolerance (the
// fuzzer cannot forge one); and an accepted event goes through the policy
// without a panic.
func FuzzVerifyEvent(f *testing.F) {
	for _, p := range fuzzEvents() {
		f.Add(p, stripetest.Sign(p, fuzzSecret, fuzzNow))
	}
	good := fuzzEvents()[0]
	sig := stripetest.Sign(good, fuzzSecret, fuzzNow)
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)
	for _, h := range []string{
		"", " ", ",", "=", "t=", "v1=", "t=,v1=", "garbage",
		"t=" + ts,
		"t=" + ts + ",v1=",
		"t=" + ts + ",v1=zz",
		"t=" + ts + ",v1=" + strings.Repeat("0", 64),
		"t=-1,v1=00",
		"t=99999999999999999999,v1=00",
		"t=" + ts + "," + sig,
		sig + ",v1=" + strings.Repeat("a", 64),
		"v1=" + strings.Repeat("a", 64) + "," + sig,
		strings.ToUpper(sig),
		strings.ReplaceAll(sig, ",", ";"),
		strings.ReplaceAll(sig, "=", " = "),
		stripetest.Sign(good, fuzzSecret, fuzzNow.Add(-301*time.Second)),
		stripetest.Sign(good, fuzzSecret, fuzzNow.Add(301*time.Second)),
		stripetest.Sign(good, "whsec_fuzz_previous", fuzzNow),
		stripetest.Sign(good, "whsec_wrong", fuzzNow),
		"t=" + ts + ",v0=" + strings.Repeat("a", 64),
		"t=" + ts + ",t=" + ts + ",v1=00",
	} {
		f.Add(good, h)
	}
	v := newFuzzVerifier(f)
	policy := domain.DefaultDunningPolicy()
	f.Fuzz(func(t *testing.T, payload []byte, header string) {
		ev, err := v.VerifyEvent(payload, header)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("rejection does not wrap ErrInvalid: %v", err)
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("rejection names the secret: %v", err)
			}
			return
		}
		if !signedBy(payload, header, []string{fuzzSecret, "whsec_fuzz_previous"}) {
			t.Fatalf("accepted a delivery without a valid signature: header %q", header)
		}
		checkEvent(t, policy, ev)
	})
}

// FuzzVerifiedEvent fuzzes the event decoder and the policy behind a valid
// signature: the target signs whatever body the fuzzer makes, as Stripe (or
// a holder of the secret) would, so every mutation reaches the decoder.
// Nothing may panic; a rejection wraps ErrInvalid.
func FuzzVerifiedEvent(f *testing.F) {
	for _, p := range fuzzEvents() {
		f.Add(p)
	}
	v := newFuzzVerifier(f)
	policy := domain.DefaultDunningPolicy()
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := v.VerifyEvent(payload, stripetest.Sign(payload, fuzzSecret, fuzzNow))
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("rejection does not wrap ErrInvalid: %v", err)
			}
			return
		}
		checkEvent(t, policy, ev)
	})
}

// FuzzVerifiedEventFields fuzzes the decoder and the policy with well-formed
// JSON: the target renders a signed event whose type, object kind and key
// fields come from the fuzzer (byte mutations of JSON rarely stay JSON),
// so every decoding branch sees odd values: unknown types, mismatched
// objects, negative or huge counts and amounts, far timestamps, and
// related ids given as an object instead of a string.
func FuzzVerifiedEventFields(f *testing.F) {
	types := []string{
		domain.EventInvoicePaymentFailed, domain.EventInvoicePaymentActionRequired, domain.EventInvoicePaid,
		domain.EventInvoiceVoided, domain.EventInvoiceMarkedUncollectible, domain.EventChargeFailed,
		domain.EventCustomerSubscriptionDeleted, "charge.dispute.created", "",
	}
	kinds := []string{"invoice", "invoice", "invoice", "invoice", "invoice", "charge", "subscription", "dispute", ""}
	for i, typ := range types {
		f.Add(typ, kinds[i], "obj_1", "cus_1", int64(i), int64(2000), int64(0), false)
		f.Add(typ, kinds[(i+1)%len(kinds)], "", "", int64(-1), int64(-5), fuzzNow.Unix(), true)
	}
	f.Add(domain.EventInvoicePaymentFailed, "invoice", "in_1", "cus_1", int64(1)<<40, int64(1)<<62, int64(-1)<<62, false)
	v := newFuzzVerifier(f)
	policy := domain.DefaultDunningPolicy()
	f.Fuzz(func(t *testing.T, typ, kind, id, customer string, count, amount, next int64, expand bool) {
		obj := map[string]any{
			"object": kind, "id": id, "customer": customer, "attempt_count": count,
			"amount_due": amount, "amount_paid": amount, "amount": amount, "currency": "usd",
			"next_payment_attempt": nil, "invoice": nil, "subscription": nil,
		}
		if next != 0 {
			obj["next_payment_attempt"] = next
		}
		if expand {
			// Stripe expands related objects on request: an object where
			// an id string usually is.
			obj["customer"] = map[string]any{"object": "customer", "id": customer, "email": "jenny@example.com"}
			obj["invoice"] = map[string]any{"object": "invoice", "id": id}
			obj["subscription"] = map[string]any{"object": "subscription", "id": id}
		}
		payload := stripetest.Event{ID: "evt_fields", Type: typ, Account: "acct_fuzz", Created: fuzzNow, Object: obj}.JSON()
		ev, err := v.VerifyEvent(payload, stripetest.Sign(payload, fuzzSecret, fuzzNow))
		if err != nil {
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("rejection does not wrap ErrInvalid: %v", err)
			}
			return
		}
		checkEvent(t, policy, ev)
	})
}

// checkEvent holds for every event the verifier accepts: it has an id and
// a type, and the policy's decision on it (from the record of the fact it
// reports) either refuses it as ErrInvalid or is well formed for the
// merchant.
func checkEvent(t *testing.T, policy domain.DunningPolicy, ev domain.Event) {
	t.Helper()
	if ev.ID == "" || ev.Type == "" {
		t.Fatalf("accepted an event without id or type: %+v", ev)
	}
	objects := 0
	for _, set := range []bool{ev.Invoice != nil, ev.Charge != nil, ev.Subscription != nil} {
		if set {
			objects++
		}
	}
	if objects > 1 {
		t.Fatalf("event %s decoded into %d objects, at most one expected", ev.ID, objects)
	}
	var rec domain.InvoiceRecord
	if fact, ok := domain.FactOf(ev, fuzzNow); ok {
		rec = rec.Apply(fact)
	}
	d, err := domain.Decide(ev, rec, policy, fuzzMerchant, fuzzNow)
	if err != nil {
		if !errors.Is(err, domain.ErrInvalid) {
			t.Fatalf("policy error does not wrap ErrInvalid: %v", err)
		}
		return
	}
	if d.Action == "" {
		t.Fatalf("policy returned no action for %s", ev.Type)
	}
	for _, task := range d.Schedule {
		if task.MerchantID != fuzzMerchant || task.StripeEventID != ev.ID || task.Status != domain.StatusPending {
			t.Fatalf("scheduled task not of this merchant and event, or not pending: %+v", task)
		}
		if _, err := domain.ParseTaskID(string(task.ID)); err != nil {
			t.Fatalf("scheduled task has a bad id %q: %v", task.ID, err)
		}
		// Emails are due from now; a retry or an end follows the
		// invoice's last failure, whenever the event says it was.
		due := fuzzNow
		if task.Type == domain.TypeRetryPayment || task.Type == domain.TypeEndDunning {
			due = rec.LastFailedAt
		}
		if task.RunAt.Before(due) {
			t.Fatalf("task %s due %s, before %s", task.Type, task.RunAt, due)
		}
	}
}

// signedBy reports whether header carries, at a timestamp within the
// tolerance, a v1 signature of payload by one of secrets: computed here
// independently of the verifier and of stripe-go.
func signedBy(payload []byte, header string, secrets []string) bool {
	var ts string
	var sigs []string
	for pair := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		switch {
		case !ok:
		case k == "t" && ts == "":
			ts = v
		case k == "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := fuzzNow.Sub(time.Unix(sec, 0)); d > recoupstripe.Tolerance || d < -recoupstripe.Tolerance {
		return false
	}
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts))
		mac.Write([]byte("."))
		mac.Write(payload)
		want := mac.Sum(nil)
		for _, s := range sigs {
			// Hex of either case: one signature, two spellings.
			if got, err := hex.DecodeString(s); err == nil && hmac.Equal(got, want) {
				return true
			}
		}
	}
	return false
}
