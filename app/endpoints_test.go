package app_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
)

func TestEndpointCreate(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	m, other := f.merchant(t, "Acme"), f.merchant(t, "Other")
	ctx := context.Background()

	ep, err := f.endpoints.Create(ctx, m, "https://hooks.example.com/recoup?source=recoup",
		[]string{domain.OutboundTaskFailed, domain.OutboundInvoiceRecovered, domain.OutboundTaskFailed})

	is.NoErr(err)
	_, err = domain.ParseUUID(string(ep.ID))
	is.NoErr(err)                                                                                // a UUID
	is.Equal(ep.MerchantID, m.ID)                                                                // the merchant's
	is.Equal(ep.URL, "https://hooks.example.com/recoup?source=recoup")                           // at its URL
	is.Equal(ep.Events, []string{domain.OutboundInvoiceRecovered, domain.OutboundTaskFailed})    // each type once
	is.True(ep.CreatedAt.Equal(f.clock.Now()))                                                   // made now
	is.True(ep.DisabledAt.IsZero())                                                              // enabled
	is.Equal(f.sender.checkedURLs(), []string{"https://hooks.example.com/recoup?source=recoup"}) // its URL went past the network guard
	secret := ep.EncodedSecret()
	is.True(strings.HasPrefix(secret, "whsec_")) // the Standard Webhooks form of the secret
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	is.NoErr(err)                             // base64
	is.Equal(key, ep.Secret)                  // of the signing key
	is.True(len(key) >= 24 && len(key) <= 64) // of a length the specification allows

	listed, err := f.endpoints.List(ctx, m)
	is.NoErr(err)
	is.Equal(listed, []domain.WebhookEndpoint{ep}) // listed, as made
	none, err := f.endpoints.List(ctx, other)
	is.NoErr(err)
	is.Equal(len(none), 0) // to its merchant only

	f.clock.Add(time.Second)
	second := f.endpoint(t, m, "https://hooks.example.com/second")
	is.True(second.ID != ep.ID)                           // another id
	is.True(second.EncodedSecret() != ep.EncodedSecret()) // and another secret
	is.Equal(second.Events, []string{"*"})                // every type
	listed, err = f.endpoints.List(ctx, m)
	is.NoErr(err)
	is.Equal(len(listed), 2)
	is.Equal(listed[0].ID, ep.ID) // oldest first
	is.Equal(listed[1].ID, second.ID)
}

func TestEndpointCreateRefusesBadInput(t *testing.T) {
	long := "https://hooks.example.com/" + strings.Repeat("a", domain.MaxEndpointURL)
	cases := []struct {
		name   string
		url    string
		events []string
	}{
		{"plain http", "http://hooks.example.com/recoup", nil},
		{"credentials in the URL", "https://user:secret@hooks.example.com/recoup", nil},
		{"a user in the URL", "https://user@hooks.example.com/recoup", nil},
		{"too long", long, nil},
		{"no scheme", "hooks.example.com/recoup", nil},
		{"another scheme", "ftp://hooks.example.com/recoup", nil},
		{"no host", "https:///recoup", nil},
		{"a fragment", "https://hooks.example.com/recoup#part", nil},
		{"not a URL", "https://hooks.example.com/%zz", nil},
		{"a NUL character", "https://hooks.example.com/re\x00coup", nil},
		{"empty", "", nil},
		{"loopback", "https://127.0.0.1/recoup", nil},
		{"loopback by name", "https://localhost:8443/recoup", nil},
		{"IPv6 loopback", "https://[::1]/recoup", nil},
		{"private", "https://10.0.0.7/recoup", nil},
		{"link-local (cloud metadata)", "https://169.254.169.254/latest/meta-data", nil},
		{"no event type", "https://hooks.example.com/recoup", []string{}},
		{"an unknown event type", "https://hooks.example.com/recoup", []string{"task.created"}},
		{"an unknown type beside *", "https://hooks.example.com/recoup", []string{"*", "invoice.paid"}},
		{"an empty type", "https://hooks.example.com/recoup", []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			f := newDeliveryFixture(t)
			m := f.merchant(t, "Acme")
			events := tc.events
			if events == nil {
				events = []string{"*"}
			}

			_, err := f.endpoints.Create(context.Background(), m, tc.url, events)

			is.True(errors.Is(err, domain.ErrInvalid)) // refused as bad input
			listed, err := f.endpoints.List(context.Background(), m)
			is.NoErr(err)
			is.Equal(len(listed), 0) // and nothing stored
		})
	}

	t.Run("private addresses where the deployment allows them", func(t *testing.T) {
		is := is.New(t)
		f := newDeliveryFixture(t)
		f.sender.allowPrivate = true // RECOUP_WEBHOOK_ALLOW_PRIVATE=true
		m := f.merchant(t, "Acme")
		ep, err := f.endpoints.Create(context.Background(), m, "http://127.0.0.1:8080/recoup", []string{"*"})
		is.NoErr(err) // the guard decides, not the use case
		is.Equal(ep.URL, "http://127.0.0.1:8080/recoup")
	})
}

func TestEndpointLimitPerMerchant(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	m, other := f.merchant(t, "Acme"), f.merchant(t, "Other")
	ctx := context.Background()
	var first domain.WebhookEndpoint
	for i := range domain.MaxEndpointsPerShop {
		ep := f.endpoint(t, m, fmt.Sprintf("https://hooks.example.com/%d", i))
		if i == 0 {
			first = ep
		}
	}

	_, err := f.endpoints.Create(ctx, m, "https://hooks.example.com/one-too-many", []string{"*"})
	is.True(errors.Is(err, domain.ErrConflict)) // past the limit
	listed, err := f.endpoints.List(ctx, m)
	is.NoErr(err)
	is.Equal(len(listed), domain.MaxEndpointsPerShop) // nothing stored

	f.endpoint(t, other, "https://hooks.example.com/other") // another merchant has its own limit
	is.NoErr(f.endpoints.Delete(ctx, m, first.ID))
	f.endpoint(t, m, "https://hooks.example.com/in-its-place") // and a deleted endpoint frees its place
}

func TestEndpointDelete(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	owner, stranger := f.merchant(t, "Owner"), f.merchant(t, "Stranger")
	ctx := context.Background()
	ep := f.endpoint(t, owner, "https://hooks.example.com/recoup")
	kept := f.endpoint(t, owner, "https://hooks.example.com/kept")
	f.enqueue(t, owner, domain.OutboundTaskSucceeded, map[string]string{"id": "t1"})

	err := f.endpoints.Delete(ctx, stranger, ep.ID)
	is.True(errors.Is(err, domain.ErrForbidden)) // another merchant's endpoint is forbidden
	listed, err := f.endpoints.List(ctx, owner)
	is.NoErr(err)
	is.Equal(len(listed), 2)                        // and stays
	is.Equal(len(f.deliveries(t, owner, ep.ID)), 1) // with its deliveries
	_, err = f.endpoints.Deliveries(ctx, stranger, ep.ID, domain.DeliveryFilter{})
	is.True(errors.Is(err, domain.ErrForbidden)) // which the stranger cannot read

	for _, id := range []domain.EndpointID{domain.EndpointID(domain.NewID()), "not-an-id", ""} {
		is.True(errors.Is(f.endpoints.Delete(ctx, owner, id), domain.ErrNotFound)) // no such endpoint
	}

	is.NoErr(f.endpoints.Delete(ctx, owner, ep.ID)) // the owner deletes it
	listed, err = f.endpoints.List(ctx, owner)
	is.NoErr(err)
	is.Equal(listed, []domain.WebhookEndpoint{kept})                              // it is gone
	is.True(errors.Is(f.endpoints.Delete(ctx, owner, ep.ID), domain.ErrNotFound)) // for good
	_, err = f.endpoints.Deliveries(ctx, owner, ep.ID, domain.DeliveryFilter{})
	is.True(errors.Is(err, domain.ErrNotFound))       // with its deliveries
	is.Equal(len(f.deliveries(t, owner, kept.ID)), 1) // the other endpoint's stay
}

func TestEndpointDeliveries(t *testing.T) {
	is := is.New(t)
	f := newDeliveryFixture(t)
	m := f.merchant(t, "Acme")
	ctx := context.Background()
	ep := f.endpoint(t, m, "https://hooks.example.com/recoup")
	for i := range 5 {
		f.enqueue(t, m, domain.OutboundTaskSucceeded, map[string]int{"n": i})
		f.clock.Add(time.Minute)
	}
	is.Equal(runDeliveries(t, f.worker(app.DeliveryConfig{Concurrency: 2, Lease: time.Minute})), 2) // two delivered

	var all []domain.Delivery
	filter := domain.DeliveryFilter{Limit: 2}
	for range 10 {
		page, err := f.endpoints.Deliveries(ctx, m, ep.ID, filter)
		is.NoErr(err)
		is.True(len(page.Deliveries) <= 2) // pages of the limit
		all = append(all, page.Deliveries...)
		if page.Next == nil {
			break
		}
		filter.After = page.Next
	}
	is.Equal(len(all), 5) // every delivery, once
	delivered := 0
	for i, d := range all {
		if i > 0 {
			is.True(d.CreatedAt.Before(all[i-1].CreatedAt)) // newest first
		}
		is.Equal(d.EndpointID, ep.ID)
		is.Equal(d.EventType, domain.OutboundTaskSucceeded)
		is.Equal(d.Payload, nil) // without the payload
		is.True(strings.HasPrefix(string(d.ID), "msg_"))
		if d.Status == domain.DeliveryDelivered {
			delivered++
			is.Equal(d.Attempts, 1)
			is.Equal(d.LastStatusCode, 200)
			continue
		}
		is.Equal(d.Status, domain.DeliveryPending)
		is.Equal(d.Attempts, 0)
	}
	is.Equal(delivered, 2)
	is.Equal(all[4].Status, domain.DeliveryDelivered) // the oldest went first
	is.Equal(all[3].Status, domain.DeliveryDelivered)

	page, err := f.endpoints.Deliveries(ctx, m, ep.ID, domain.DeliveryFilter{}) // no limit: the default page
	is.NoErr(err)
	is.Equal(len(page.Deliveries), 5)
	for _, limit := range []int{-1, domain.MaxPageSize + 1} {
		_, err := f.endpoints.Deliveries(ctx, m, ep.ID, domain.DeliveryFilter{Limit: limit})
		is.True(errors.Is(err, domain.ErrInvalid)) // a limit out of range is refused
	}
	_, err = f.endpoints.Deliveries(ctx, m, domain.EndpointID(domain.NewID()), domain.DeliveryFilter{})
	is.True(errors.Is(err, domain.ErrNotFound)) // no such endpoint
}
