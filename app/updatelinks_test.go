package app_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/ports"
)

// portalCall is one customer portal session the gateway was asked for.
type portalCall struct{ Account, Customer, ReturnURL string }

// portalGateway is the scripted gateway that also records portal
// sessions and answers each invoice's hosted page.
type portalGateway struct {
	*scriptedGateway
	mu       sync.Mutex
	sessions []portalCall
}

func (g *portalGateway) Invoice(ctx context.Context, account, id string) (domain.Invoice, error) {
	inv, err := g.scriptedGateway.Invoice(ctx, account, id)
	if err == nil {
		inv.HostedInvoiceURL = "https://invoice.stripe.com/i/" + account + "/" + id
	}
	return inv, err
}

func (g *portalGateway) PortalSession(_ context.Context, account, customer, returnURL string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sessions = append(g.sessions, portalCall{account, customer, returnURL})
	return "https://billing.stripe.com/p/session/" + account + "_" + customer, nil
}

func (g *portalGateway) calls() []portalCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]portalCall(nil), g.sessions...)
}

// linkOf returns the token of an email's update link.
func linkOf(t *testing.T, n domain.Notification) string {
	t.Helper()
	token, ok := strings.CutPrefix(n.UpdateURL, engineLinkBase+"/update/")
	if !ok || token == "" {
		t.Fatalf("the %s email has no update link: %q", n.Type, n.UpdateURL)
	}
	return token
}

// linkFixture is an engine whose emails carry update links, and the
// update-link use case that opens them, over a portal gateway.
type linkFixture struct {
	*engine
	portal *portalGateway
	links  *app.UpdateLinkService
}

func newLinkFixture(t *testing.T) *linkFixture {
	t.Helper()
	e := newEngine(t)
	portal := &portalGateway{scriptedGateway: e.gateway}
	return &linkFixture{engine: e, portal: portal,
		links: app.NewUpdateLinkService(engineLinkKeys, e.store.Merchants(), portal, e.clock)}
}

// emailLink makes the merchant's customer's invoice fail, sends its email
// and returns the email's update link.
func (f *linkFixture) emailLink(t *testing.T, m domain.Merchant, customer, invoice string) string {
	t.Helper()
	ev := f.failure(m, invoice, 1)
	ev.Invoice.CustomerID = customer
	f.handle(t, ev)
	f.runDue(t)
	for _, n := range f.sentOf(domain.TypeNotifyPaymentFailed) {
		if n.InvoiceID == invoice {
			return linkOf(t, n)
		}
	}
	t.Fatalf("no email about %s", invoice)
	return ""
}

func TestUpdateLinkOpensTheCustomersPortal(t *testing.T) {
	is := is.New(t)
	f := newLinkFixture(t)
	ctx := context.Background()
	other := f.addMerchant(t, "Other Shop", "acct_1Other")
	mine := f.emailLink(t, f.merchant, "cus_jenny", "in_mine")
	theirs := f.emailLink(t, other, "cus_jenny", "in_theirs") // the same customer id at another merchant

	url, err := f.links.PortalURL(ctx, mine)
	is.NoErr(err)
	is.Equal(url, "https://billing.stripe.com/p/session/acct_1Acme_cus_jenny") // the session Stripe made
	url, err = f.links.PortalURL(ctx, theirs)
	is.NoErr(err)
	is.Equal(url, "https://billing.stripe.com/p/session/acct_1Other_cus_jenny")
	is.Equal(f.portal.calls(), []portalCall{
		{"acct_1Acme", "cus_jenny", "https://invoice.stripe.com/i/acct_1Acme/in_mine"}, // on the link's merchant's account, back to its invoice
		{"acct_1Other", "cus_jenny", "https://invoice.stripe.com/i/acct_1Other/in_theirs"},
	})

	link, err := engineLinkKeys.Parse(mine, f.clock.Now())
	is.NoErr(err) // the token round-trips
	is.Equal(link.Merchant, f.merchant.ID)
	is.Equal(link.Customer, "cus_jenny")
	is.Equal(link.Invoice, "in_mine")
	is.True(link.Expires.Equal(f.clock.Now().Add(30 * day))) // valid for 30 days from its email
}

func TestUpdateLinkRefused(t *testing.T) {
	f := newLinkFixture(t)
	token := f.emailLink(t, f.merchant, "cus_jenny", "in_1")
	otherKeys := domain.LinkKeysFromSecrets([]string{"whsec_someone_else"})
	forged, err := otherKeys.Sign(domain.UpdateLink{Merchant: f.merchant.ID, Customer: "cus_jenny", Invoice: "in_1", Expires: f.clock.Now().Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	noMerchant, err := engineLinkKeys.Sign(domain.UpdateLink{Merchant: domain.MerchantID(domain.NewID()), Customer: "cus_jenny", Expires: f.clock.Now().Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := []struct {
		name  string
		token string
		wait  time.Duration
	}{
		{"expired", token, 30 * day},
		{"tampered at the start", flip(token, 1), 0},
		{"tampered in the middle", flip(token, len(token)/2), 0},
		{"tampered at the end", flip(token, len(token)-1), 0},
		{"cut short", token[:len(token)-4], 0},
		{"signed with another key", forged, 0},
		{"of a merchant that does not exist", noMerchant, 0},
		{"not a token", "hello", 0},
		{"empty", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			clock := clocktest.New(f.clock.Now().Add(tc.wait))
			links := app.NewUpdateLinkService(engineLinkKeys, f.store.Merchants(), f.portal, clock)
			url, err := links.PortalURL(context.Background(), tc.token)
			is.True(errors.Is(err, domain.ErrNotFound)) // a bad link is a page that does not exist
			is.Equal(url, "")
			is.Equal(len(f.portal.calls()), 0) // and opens no portal
		})
	}

	t.Run("a second before it expires", func(t *testing.T) {
		is := is.New(t)
		clock := clocktest.New(f.clock.Now().Add(30*day - time.Second))
		links := app.NewUpdateLinkService(engineLinkKeys, f.store.Merchants(), f.portal, clock)
		_, err := links.PortalURL(context.Background(), token)
		is.NoErr(err) // still works
	})
}

func TestUpdateLinkKeyRotation(t *testing.T) {
	is := is.New(t)
	f := newLinkFixture(t)
	ctx := context.Background()
	old := f.emailLink(t, f.merchant, "cus_jenny", "in_1")
	newKey := domain.LinkKeysFromSecrets([]string{"whsec_rotated"})[0]

	rotating := app.NewUpdateLinkService(domain.LinkKeys{newKey, engineLinkKeys[0]}, f.store.Merchants(), f.portal, f.clock)
	_, err := rotating.PortalURL(ctx, old)
	is.NoErr(err) // a link signed before the rotation works while its key is kept

	rotated := app.NewUpdateLinkService(domain.LinkKeys{newKey}, f.store.Merchants(), f.portal, f.clock)
	_, err = rotated.PortalURL(ctx, old)
	is.True(errors.Is(err, domain.ErrNotFound)) // and no longer once it is dropped
}

func TestUpdateLinkStripeFailures(t *testing.T) {
	t.Run("no Stripe key", func(t *testing.T) {
		is := is.New(t)
		f := newLinkFixture(t)
		token := f.emailLink(t, f.merchant, "cus_jenny", "in_1")
		links := app.NewUpdateLinkService(engineLinkKeys, f.store.Merchants(), nil, f.clock)
		_, err := links.PortalURL(context.Background(), token)
		is.True(errors.Is(err, domain.ErrUnavailable))
	})
	t.Run("the invoice is gone", func(t *testing.T) {
		is := is.New(t)
		f := newLinkFixture(t)
		token := f.emailLink(t, f.merchant, "cus_jenny", "in_1")
		f.gateway.invoice = func(_, id string) (domain.Invoice, error) {
			return domain.Invoice{}, &domain.PaymentError{Kind: domain.PaymentPermanent, Message: "No such invoice", Err: domain.ErrNotFound}
		}
		_, err := f.links.PortalURL(context.Background(), token)
		is.True(errors.Is(err, domain.ErrNotFound))
		is.Equal(len(f.portal.calls()), 0)
	})
	t.Run("Stripe unreachable", func(t *testing.T) {
		is := is.New(t)
		f := newLinkFixture(t)
		token := f.emailLink(t, f.merchant, "cus_jenny", "in_1")
		f.gateway.invoice = func(_, id string) (domain.Invoice, error) {
			return domain.Invoice{}, &domain.PaymentError{Kind: domain.PaymentTransient, Message: "timeout"}
		}
		_, err := f.links.PortalURL(context.Background(), token)
		is.True(errors.Is(err, domain.ErrUnavailable))
	})
}

// TestEveryEmailCarriesAnUpdateLink: each customer email links to its
// customer's update page, naming the merchant, the customer and the
// invoice it is about; without a public URL, the hosted invoice instead.
func TestEveryEmailCarriesAnUpdateLink(t *testing.T) {
	is := is.New(t)
	e := newEngine(t)
	m := e.merchant
	p := quietPolicy()
	p.Emails.ReminderHours = []int{1}
	p.MaxEmailsPerCustomerPerWeek = 10
	e.setPolicy(t, m, p)
	e.handle(t, e.failure(m, "in_failed", 1))
	required := e.failure(m, "in_required", 1)
	required.Type = domain.EventInvoicePaymentActionRequired
	e.handle(t, required)
	e.handle(t, e.chargeFailed(m, "", "generic_decline"))
	e.handle(t, e.cardExpiring(t, m, "cus_jenny", "card_1", 9, 2026))
	e.advance(t, time.Hour) // the reminder too

	types := map[domain.TaskType]bool{}
	for _, n := range e.notifier.all() {
		types[n.Type] = true
		link, err := engineLinkKeys.Parse(linkOf(t, n), e.clock.Now())
		is.NoErr(err)                        // a valid link
		is.Equal(link.Merchant, m.ID)        // of the merchant
		is.Equal(link.Customer, "cus_jenny") // for its customer
		is.Equal(link.Invoice, n.InvoiceID)  // about the email's invoice, if any
	}
	is.Equal(len(types), 5) // every kind of email was sent

	t.Run("without a public URL", func(t *testing.T) {
		is := is.New(t)
		f := newWorkerFixture(t)
		task := f.schedule(t, f.task(domain.TypeNotifyPaymentFailed))[0]
		runOnceOK(t, f.worker(t, workerTestConfig()))
		sent := f.notifier.all()
		is.Equal(len(sent), 1)
		is.Equal(sent[0].UpdateURL, "")                           // no update link
		is.Equal(sent[0].HostedInvoiceURL, task.HostedInvoiceURL) // the email points to the hosted invoice
	})
}

var _ ports.PaymentGateway = (*portalGateway)(nil)
