package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

func TestCheckIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"", true}, // no key
		{"retry-1", true},
		{"order 42 / retry #1 ~", true}, // any printable ASCII
		{strings.Repeat("k", domain.MaxIdempotencyKey), true},
		{strings.Repeat("k", domain.MaxIdempotencyKey+1), false}, // too long
		{"café", false},      // not ASCII
		{"tab\there", false}, // a control character
		{"nul\x00", false},
		{"del\x7f", false},
	} {
		err := domain.CheckIdempotencyKey(tc.key)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, domain.ErrInvalid)) {
			t.Errorf("CheckIdempotencyKey(%q) = %v; want ok %v, else ErrInvalid", tc.key, err, tc.ok)
		}
	}
}

func TestSameRequest(t *testing.T) {
	is := is.New(t)
	m := domain.MerchantID(domain.NewID())
	e, err := domain.NewWebhookEndpoint(m, "https://hooks.example/a", []string{domain.OutboundTaskFailed, domain.OutboundTaskSucceeded}, day(1))
	is.NoErr(err)
	again, err := domain.NewWebhookEndpoint(m, "https://hooks.example/a", []string{domain.OutboundTaskSucceeded, domain.OutboundTaskFailed}, day(1))
	is.NoErr(err)
	is.True(e.SameRequest(again)) // the same URL and events, in any order asked: another id and secret do not count
	other, err := domain.NewWebhookEndpoint(m, "https://hooks.example/b", e.Events, day(1))
	is.NoErr(err)
	is.True(!e.SameRequest(other)) // another URL
	fewer, err := domain.NewWebhookEndpoint(m, e.URL, []string{domain.OutboundTaskFailed}, day(1))
	is.NoErr(err)
	is.True(!e.SameRequest(fewer)) // other events
}
