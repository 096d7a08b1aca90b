package stripe_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	recoupstripe "github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

const (
	secret    = "whsec_test_current_0123456789"
	oldSecret = "whsec_test_previous_9876543210"
)

// fixedClock is a ports.Clock that always answers the same time.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

var now = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func newVerifier(t *testing.T, secrets []string, opts ...recoupstripe.VerifierOption) *recoupstripe.Verifier {
	t.Helper()
	v, err := recoupstripe.NewVerifier(secrets, append([]recoupstripe.VerifierOption{recoupstripe.WithClock(fixedClock{now})}, opts...)...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func failedInvoiceEvent() []byte {
	return stripetest.Event{ID: "evt_1", Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Created: now, Object: stripetest.Invoice{
		ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000, Currency: "usd", AttemptCount: 1, Status: "open",
	}}.JSON()
}

// changed returns payload with its first old replaced by new, failing the
// test if payload has no old (the case would test nothing).
func changed(t *testing.T, payload []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(payload, []byte(old)) {
		t.Fatalf("payload has no %s", old)
	}
	return bytes.Replace(payload, []byte(old), []byte(new), 1)
}

func TestVerifierRejects(t *testing.T) {
	good := failedInvoiceEvent()
	signed := func(p []byte, at time.Time) string { return stripetest.Sign(p, secret, at) }
	cases := []struct {
		name    string
		payload []byte
		header  string
		want    string
	}{
		{"no header", good, "", "missing Stripe-Signature header"},
		{"blank header", good, "  ", "missing Stripe-Signature header"},
		{"header without timestamp", good, "v1=abcdef", "malformed Stripe-Signature header"},
		{"header not key=value", good, "garbage", "malformed Stripe-Signature header"},
		{"header without a v1 signature", good, "t=" + itoa(now.Unix()), "no valid signature for any configured secret"},
		{"wrong secret", good, stripetest.Sign(good, "whsec_wrong", now), "no valid signature for any configured secret"},
		{"timestamp 301 s old", good, signed(good, now.Add(-301*time.Second)), "timestamp outside the tolerance"},
		{"timestamp an hour old", good, signed(good, now.Add(-time.Hour)), "timestamp outside the tolerance"},
		{"timestamp 301 s ahead", good, signed(good, now.Add(301*time.Second)), "timestamp outside the tolerance"},
		{"timestamp a day ahead", good, signed(good, now.Add(24*time.Hour)), "timestamp outside the tolerance"},
		{"body changed after signing", changed(t, good, `"amount_due": 2000`, `"amount_due": 1`), signed(good, now), "no valid signature for any configured secret"},
		{"body extended after signing", append(append([]byte{}, good...), ' '), signed(good, now), "no valid signature for any configured secret"},
		{"non-JSON body", []byte("hello, stripe"), signed([]byte("hello, stripe"), now), "body is not a Stripe event"},
		{"empty body", []byte{}, signed([]byte{}, now), "body is not a Stripe event"},
		{"JSON array", []byte(`[1,2,3]`), signed([]byte(`[1,2,3]`), now), "body is not a Stripe event"},
		{"JSON object, not an event", []byte(`{"hello":"world"}`), signed([]byte(`{"hello":"world"}`), now), "body is not a Stripe event"},
		{"event without id", []byte(`{"object":"event","type":"invoice.paid","data":{"object":{"object":"invoice","id":"in_1"}}}`),
			signed([]byte(`{"object":"event","type":"invoice.paid","data":{"object":{"object":"invoice","id":"in_1"}}}`), now), "body is not a Stripe event"},
		{"handled type without data", []byte(`{"id":"evt_1","object":"event","type":"invoice.paid"}`),
			signed([]byte(`{"id":"evt_1","object":"event","type":"invoice.paid"}`), now), "body is not a Stripe event"},
	}
	mismatched := stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Object: stripetest.Charge{}}.JSON()
	cases = append(cases, struct {
		name    string
		payload []byte
		header  string
		want    string
	}{"invoice event carrying a charge", mismatched, signed(mismatched, now), "body is not a Stripe event"})
	badObject := []byte(`{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"object":"invoice","id":"in_1","amount_due":"lots"}}}`)
	cases = append(cases, struct {
		name    string
		payload []byte
		header  string
		want    string
	}{"invoice field of the wrong type", badObject, signed(badObject, now), "body is not a Stripe event"})

	for _, p := range []struct{ name, body string }{
		// Read one way here and another by a different parser: refused.
		{"duplicate member name", `{"id":"evt_1","object":"event","type":"invoice.paid","type":"invoice.created","data":{"object":{"object":"invoice","id":"in_1"}}}`},
		{"duplicate member name in data.object", `{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"object":"invoice","id":"in_1","id":"in_2"}}}`},
		{"invalid UTF-8", "{\"id\":\"evt_\xff\",\"object\":\"event\",\"type\":\"invoice.paid\",\"data\":{\"object\":{\"object\":\"invoice\",\"id\":\"in_1\"}}}"},
		{"data.object a bare id", `{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":"in_1"}}`},
	} {
		cases = append(cases, struct {
			name    string
			payload []byte
			header  string
			want    string
		}{p.name, []byte(p.body), signed([]byte(p.body), now), "body is not a Stripe event"})
	}

	v := newVerifier(t, []string{secret})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, err := v.VerifyEvent(tc.payload, tc.header)
			is.True(err != nil)                             // rejected
			is.True(errors.Is(err, domain.ErrInvalid))      // as invalid input
			is.True(strings.Contains(err.Error(), tc.want)) // with the sender's message
			is.True(!strings.Contains(err.Error(), secret)) // never revealing the secret
		})
	}
}

func TestVerifierToleranceEdges(t *testing.T) {
	v := newVerifier(t, []string{secret})
	payload := failedInvoiceEvent()
	for _, d := range []time.Duration{-300 * time.Second, -time.Second, 0, time.Second, 300 * time.Second} {
		t.Run(d.String(), func(t *testing.T) {
			is := is.New(t)
			ev, err := v.VerifyEvent(payload, stripetest.Sign(payload, secret, now.Add(d)))
			is.NoErr(err)            // within 300 s either way is accepted
			is.Equal(ev.ID, "evt_1") // and decoded
		})
	}
}

func TestVerifierRotation(t *testing.T) {
	v := newVerifier(t, []string{secret, " ", oldSecret})
	payload := failedInvoiceEvent()
	for _, s := range []string{secret, oldSecret} {
		t.Run(s[:14], func(t *testing.T) {
			is := is.New(t)
			ev, err := v.VerifyEvent(payload, stripetest.Sign(payload, s, now))
			is.NoErr(err) // signed with either configured secret: accepted
			is.Equal(ev.ID, "evt_1")
		})
	}
	t.Run("both signatures in one header", func(t *testing.T) {
		is := is.New(t)
		// During a rotation Stripe signs with both secrets: t=…,v1=…,v1=…
		h1 := stripetest.Sign(payload, "whsec_unknown", now)
		h2 := stripetest.Sign(payload, oldSecret, now)
		_, sig2, _ := strings.Cut(h2, ",")
		_, err := v.VerifyEvent(payload, h1+","+sig2)
		is.NoErr(err) // one matching signature is enough
	})
	t.Run("only the old secret configured", func(t *testing.T) {
		is := is.New(t)
		v := newVerifier(t, []string{oldSecret})
		_, err := v.VerifyEvent(payload, stripetest.Sign(payload, secret, now))
		is.True(errors.Is(err, domain.ErrInvalid)) // a secret no longer configured is refused
	})
}

// TestVerifierKeepsNothingOfThePayload checks the port's rule that the
// caller may reuse the payload once VerifyEvent returns: the event decoded
// from it, every kind of object included, shares none of its memory.
func TestVerifierKeepsNothingOfThePayload(t *testing.T) {
	v := newVerifier(t, []string{secret})
	next := now.Add(72 * time.Hour)
	objects := []struct {
		typ    string
		object any
	}{
		{domain.EventInvoicePaymentFailed, stripetest.Invoice{ID: "in_1", Customer: "cus_1", CustomerEmail: "jenny@example.com", AmountDue: 2000,
			AttemptCount: 1, NextPaymentAttempt: &next, HostedInvoiceURL: "https://invoice.stripe.com/i/1", Subscription: "sub_1", Charge: "ch_1"}},
		{domain.EventChargeFailed, stripetest.Charge{ID: "ch_1", Customer: "cus_1", Invoice: "in_1", BillingEmail: "jenny@example.com", Amount: 2000}},
		{domain.EventCustomerSubscriptionDeleted, stripetest.Subscription{ID: "sub_1", Customer: "cus_1"}},
	}
	for _, o := range objects {
		t.Run(o.typ, func(t *testing.T) {
			is := is.New(t)
			payload := stripetest.Event{ID: "evt_1", Type: o.typ, Account: "acct_1", Created: now, Object: o.object}.JSON()
			ev, err := v.VerifyEvent(payload, stripetest.Sign(payload, secret, now))
			is.NoErr(err)
			want := fmt.Sprintf("%+v %+v %+v %+v", ev, ev.Invoice, ev.Charge, ev.Subscription)
			for i := range payload {
				payload[i] = 'x'
			}
			is.Equal(fmt.Sprintf("%+v %+v %+v %+v", ev, ev.Invoice, ev.Charge, ev.Subscription), want) // the event did not change with the payload
		})
	}
}

func TestNewVerifierNeedsASecret(t *testing.T) {
	for _, secrets := range [][]string{nil, {}, {""}, {" ", ""}} {
		is := is.New(t)
		_, err := recoupstripe.NewVerifier(secrets)
		is.True(errors.Is(err, domain.ErrInvalid)) // no secret: refused at start
	}
}

func TestVerifierAPIVersionMismatchWarns(t *testing.T) {
	is := is.New(t)
	var logs bytes.Buffer
	v := newVerifier(t, []string{secret}, recoupstripe.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))

	payload := stripetest.Event{ID: "evt_old", Type: domain.EventInvoicePaid, Account: "acct_1", APIVersion: "2022-11-15",
		Object: stripetest.Invoice{ID: "in_1", Status: "paid", AmountPaid: 100}}.JSON()
	ev, err := v.VerifyEvent(payload, stripetest.Sign(payload, secret, now))
	is.NoErr(err)                         // another API version is still accepted
	is.Equal(ev.APIVersion, "2022-11-15") // and says so
	is.Equal(ev.Invoice.ID, "in_1")       // and decoded

	var line map[string]any
	is.NoErr(json.Unmarshal(logs.Bytes(), &line)) // exactly one JSON log line
	is.Equal(line["level"], "WARN")
	is.Equal(line["event_id"], "evt_old")
	is.Equal(line["api_version"], "2022-11-15")
	is.Equal(line["expected_api_version"], "2023-10-16")
	is.True(!strings.Contains(logs.String(), secret)) // the secret is never logged

	logs.Reset()
	payload = failedInvoiceEvent()
	_, err = v.VerifyEvent(payload, stripetest.Sign(payload, secret, now))
	is.NoErr(err)
	is.Equal(logs.Len(), 0) // the pinned version logs nothing
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestVerifierRefusesAmbiguousHeaders replays a delivery signed long ago
// (or for later) with a fresh timestamp beside the signed one, in every
// spelling that one reader could take differently from another. Each is
// refused before the signature is looked at: the timestamp whose age is
// checked must be the one the signature covers.
func TestVerifierRefusesAmbiguousHeaders(t *testing.T) {
	v := newVerifier(t, []string{secret})
	payload := failedInvoiceEvent()
	ts := func(at time.Time) string { return "t=" + itoa(at.Unix()) }
	for _, off := range []time.Duration{-time.Hour, time.Hour, -24 * 30 * time.Hour} {
		signedAt := now.Add(off)
		_, v1, _ := strings.Cut(stripetest.Sign(payload, secret, signedAt), ",") // the captured v1=…
		fresh, stale := ts(now), ts(signedAt)
		headers := map[string]string{
			"fresh t first":                 fresh + "," + stale + "," + v1,
			"fresh t last":                  stale + "," + v1 + "," + fresh,
			"fresh t between":               stale + "," + fresh + "," + v1,
			"fresh t with a leading space":  " " + fresh + "," + stale + "," + v1,
			"stale t with a leading space":  fresh + ", " + stale + "," + v1,
			"fresh t in capitals":           "T=" + itoa(now.Unix()) + "," + stale + "," + v1,
			"stale t in capitals":           fresh + ",T=" + itoa(signedAt.Unix()) + "," + v1,
			"fresh t with a trailing space": fresh + " ," + stale + "," + v1,
			"stale t zero-padded":           fresh + ",t=0" + itoa(signedAt.Unix()) + "," + v1,
			"a tab before v1":               fresh + ",\t" + v1,
			"v1 in capitals":                fresh + "," + strings.ToUpper(v1),
			"an element with two =":         fresh + "," + v1 + ",v0=a=b",
		}
		for name, h := range headers {
			t.Run(fmt.Sprintf("signed %s/%s", off, name), func(t *testing.T) {
				is := is.New(t)
				_, err := v.VerifyEvent(payload, h)
				is.True(errors.Is(err, domain.ErrInvalid))                          // refused
				is.True(strings.Contains(err.Error(), "Stripe-Signature header") || // as a malformed header
					strings.Contains(err.Error(), "no valid signature")) // or an unsigned one
				is.True(errors.Is(v.CheckHeader(h), domain.ErrInvalid) || !strings.Contains(h, "v1=")) // before the body is read
			})
		}
	}

	t.Run("a plain header is accepted", func(t *testing.T) {
		is := is.New(t)
		h := stripetest.Sign(payload, secret, now)
		is.NoErr(v.CheckHeader(h))
		_, err := v.VerifyEvent(payload, h)
		is.NoErr(err)
		_, err = v.VerifyEvent(payload, h+",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39")
		is.NoErr(err) // another scheme beside v1 is allowed
	})
}

// TestCheckHeader refuses what can never be accepted without the body.
func TestCheckHeader(t *testing.T) {
	v := newVerifier(t, []string{secret})
	payload := failedInvoiceEvent()
	for name, h := range map[string]string{
		"missing":      "",
		"malformed":    "garbage",
		"too old":      stripetest.Sign(payload, secret, now.Add(-301*time.Second)),
		"too new":      stripetest.Sign(payload, secret, now.Add(301*time.Second)),
		"two t":        "t=1,t=2,v1=" + strings.Repeat("0", 64),
		"no signature": "t=" + itoa(now.Unix()),
		"huge":         "t=" + itoa(now.Unix()) + strings.Repeat(",v0=x", 2000),
	} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			is.True(errors.Is(v.CheckHeader(h), domain.ErrInvalid)) // refused from the header alone
		})
	}
}
