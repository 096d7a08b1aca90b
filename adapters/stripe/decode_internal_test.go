package stripe

import (
	"encoding/json/v2"
	"reflect"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/stripetest"
)

// TestDecodeInOnePass checks that Stripe's own member order lets the
// object be decoded on the way, and that every other shape still decodes
// as the event's type says.
func TestDecodeInOnePass(t *testing.T) {
	t.Run("an invoice, as Stripe writes it, is decoded on the way", func(t *testing.T) {
		is := is.New(t)
		payload := stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", AttemptCount: 1}}.JSON()
		env := envelope{Data: &eventData{payload: payload}}
		is.NoErr(json.Unmarshal(payload, &env))
		is.Equal(env.Data.object.kind, "invoice")    // seen ahead
		is.True(env.Data.object.invoice != nil)      // decoded in the pass
		is.True(env.Data.object.raw == nil)          // not kept raw
		is.Equal(env.Data.object.invoice.ID, "in_1") // whole
		is.Equal(env.Type, domain.EventInvoicePaymentFailed)
	})

	cases := []struct {
		name, body string
		want       string // the invoice id; "" for none
		wantErr    bool
	}{
		{"kind after the first two members", `{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"id":"in_7","amount_paid":5,"currency":"eur","object":"invoice"}}}`, "in_7", false},
		{"object member first", `{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"object":"invoice","id":"in_8"}}}`, "in_8", false},
		{"a malformed invoice of an unhandled type", `{"id":"evt_1","object":"event","type":"invoice.created","data":{"object":{"id":"in_9","object":"invoice","amount_due":"lots"}}}`, "", false},
		{"a malformed invoice of a handled type", `{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"id":"in_9","object":"invoice","amount_due":"lots"}}}`, "", true},
		{"a charge under an invoice type", `{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"id":"ch_1","object":"charge"}}}`, "", true},
		{"data.object null", `{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":null}}`, "", true},
		{"data null", `{"id":"evt_1","object":"event","type":"invoice.paid","data":null}`, "", true},
		{"data not an object", `{"id":"evt_1","object":"event","type":"invoice.paid","data":[]}`, "", true},
		{"data without object", `{"id":"evt_1","object":"event","type":"invoice.paid","data":{"previous_attributes":{}}}`, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			ev, err := decodeEvent([]byte(tc.body))
			if tc.wantErr {
				is.True(err != nil) // refused
				return
			}
			is.NoErr(err)
			if tc.want == "" {
				is.True(ev.Invoice == nil) // no object read
				return
			}
			is.True(ev.Invoice != nil)
			is.Equal(ev.Invoice.ID, tc.want) // decoded as the type says
		})
	}
}

// FuzzDecodeOnePass checks that decoding in one pass gives what decoding
// with the object kept raw gives, for any body: the same event, or a
// refusal both ways. Its seeds are minimal events (stripetest's
// MinimalJSON): complete ones give the fuzzer so much new coverage to
// minimize that it hardly gets to mutate.
func FuzzDecodeOnePass(f *testing.F) {
	next := time.Unix(1_800_000_000, 0)
	for _, ev := range []stripetest.Event{
		{Type: domain.EventInvoicePaymentFailed, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", Customer: "cus_1", AttemptCount: 2, NextPaymentAttempt: &next, Subscription: "sub_1"}},
		{Type: domain.EventInvoicePaid, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1", Status: "paid", AmountPaid: 10}},
		{Type: domain.EventChargeFailed, Account: "acct_1", Object: stripetest.Charge{Customer: "cus_1"}},
		{Type: domain.EventCustomerSubscriptionDeleted, Account: "acct_1", Object: stripetest.Subscription{ID: "sub_1"}},
		{Type: domain.EventChargeFailed, Account: "acct_1", Object: stripetest.Invoice{ID: "in_1"}},
		{Type: "invoice.created", Account: "acct_1", Object: stripetest.Invoice{ID: "in_1"}},
	} {
		f.Add(ev.MinimalJSON())
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		one, errOne := decode(payload, true)
		two, errTwo := decode(payload, false)
		if (errOne == nil) != (errTwo == nil) {
			t.Fatalf("one pass: %v; two passes: %v", errOne, errTwo)
		}
		if !reflect.DeepEqual(one, two) {
			t.Fatalf("one pass: %+v\ntwo passes: %+v", one, two)
		}
	})
}

func TestKindAhead(t *testing.T) {
	for rest, want := range map[string]string{
		`:{"id":"in_1","object":"invoice","x":1}`:                    "invoice",
		` : { "object" : "charge" }`:                                 "charge",
		":\n{\n  \"id\": \"sub_1\",\n  \"object\": \"subscription\"": "subscription",
		`:{"id":"in_1","amount":1,"object":"invoice"}`:               "", // not among the first two
		`:{"amount":1,"object":"invoice"}`:                           "", // second, but not after "id"
		`:{"id":{"x":1},"object":"invoice"}`:                         "", // an id that is not a string
		`:{"id":"in\"1","object":"invoice"}`:                         "", // an escape: left to the decoder
		`:{"obj\u0065ct":"invoice"}`:                                 "",
		`:"in_1"`:                                                    "",
		`:null`:                                                      "",
		``:                                                           "",
		`:{"id":"in_1"`:                                              "",
	} {
		if got := kindAhead([]byte(rest)); got != want {
			t.Errorf("kindAhead(%q) = %q, want %q", rest, got, want)
		}
	}
}
