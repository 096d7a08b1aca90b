package recoup_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/recoupdev/recoup"
	"github.com/recoupdev/recoup/adapters/email"
	"github.com/recoupdev/recoup/adapters/stripe"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/internal/mailpittest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// The deployment of the customer-loop tests: its public URL, which the
// update links start with, and the address its emails come from.
const (
	loopPublicURL = "https://pay.recoup.example"
	loopSender    = "billing@recoup.example"
)

// updateLinkPattern finds an update link in an email.
var updateLinkPattern = regexp.MustCompile(regexp.QuoteMeta(loopPublicURL+"/update/") + `[A-Za-z0-9_-]+`)

// loop is recoup composed as a deployment runs it, with update links,
// over the scripted Stripe API and a real SMTP server (mailpit), on a
// fixed clock; srv serves Service.Handler: the webhook, the APIs and the
// update links.
type loop struct {
	svc   *recoup.Service
	api   *stripetest.API
	mail  mailpittest.Server
	clock *clocktest.Clock
	srv   *httptest.Server
}

func newLoop(t *testing.T, storage ports.Storage) *loop {
	t.Helper()
	clock := clocktest.New(time.Now().UTC().Truncate(time.Second))
	api := stripetest.NewAPI(t)
	api.SetClock(clock.Now)
	mail := mailpittest.Start(t)
	notifier, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mail.SMTPPort, TLS: email.TLSNone,
		From: loopSender, Timeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gw := stripe.NewGateway(stripe.GatewayConfig{APIKey: "sk_test_loop", APIBase: api.URL()})
	svc := newService(t, recoup.Options{Storage: storage, Gateway: gw, Notifier: notifier, Clock: clock,
		ReconcileInterval: -1, PublicURL: loopPublicURL})
	srv := httptest.NewServer(svc.Handler(recoup.HandlerOptions{}))
	t.Cleanup(srv.Close)
	return &loop{svc: svc, api: api, mail: mail, clock: clock, srv: srv}
}

// merchant onboards a merchant on a fresh connected account.
func (l *loop) merchant(t *testing.T, name string) domain.Merchant {
	t.Helper()
	m, _, err := l.svc.Merchants().Create(t.Context(), name, stripetest.NewID("acct_"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// failedInvoice puts on the merchant's account an open invoice of the
// customer whose payment was declined with code, and returns it.
func (l *loop) failedInvoice(m domain.Merchant, customer, email string, amount int64, currency, code string) stripetest.Invoice {
	id, charge := stripetest.NewID("in_"), stripetest.NewID("ch_")
	l.api.PutCustomer(m.StripeAccountID, customer, email)
	l.api.PutCharge(m.StripeAccountID, stripetest.Charge{ID: charge, Invoice: id, Customer: customer, Amount: amount,
		Currency: currency, FailureCode: "card_declined", DeclineCode: code, Created: l.clock.Now().Add(-time.Minute)})
	inv := stripetest.Invoice{ID: id, Customer: customer, CustomerEmail: email, AmountDue: amount, Currency: currency,
		AttemptCount: 1, Charge: charge, HostedInvoiceURL: "https://invoice.stripe.com/i/" + m.StripeAccountID + "/" + id}
	l.api.PutInvoice(m.StripeAccountID, inv)
	return inv
}

// deliver posts the event to the webhook endpoint, signed now, and wants
// it accepted.
func (l *loop) deliver(t *testing.T, ev stripetest.Event) {
	t.Helper()
	ev.Created = l.clock.Now()
	payload := ev.JSON()
	status, body := call(t, l.srv, http.MethodPost, "/webhooks/stripe", payload,
		"Stripe-Signature", stripetest.Sign(payload, testSecret, l.clock.Now()))
	if status != http.StatusOK {
		t.Fatalf("%s: %d %s", ev.Type, status, body)
	}
}

// failed delivers the invoice.payment_failed of an invoice failedInvoice
// put.
func (l *loop) failed(t *testing.T, m domain.Merchant, inv stripetest.Invoice) {
	t.Helper()
	l.deliver(t, stripetest.Event{Type: domain.EventInvoicePaymentFailed, Account: m.StripeAccountID, Object: stripetest.Invoice{
		ID: inv.ID, Customer: inv.Customer, CustomerEmail: inv.CustomerEmail, AmountDue: inv.AmountDue, Currency: inv.Currency,
		AttemptCount: inv.AttemptCount, HostedInvoiceURL: inv.HostedInvoiceURL}})
}

// drain runs the worker until nothing is due.
func (l *loop) drain(t *testing.T) {
	t.Helper()
	for range 50 {
		n, err := l.svc.Worker().RunOnce(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("the worker still had tasks due after 50 rounds")
}

// tasks are the merchant's tasks of the given type (all types when
// empty), newest first.
func (l *loop) tasks(t *testing.T, m domain.Merchant, typ domain.TaskType) []domain.Task {
	t.Helper()
	page, err := l.svc.Tasks().List(t.Context(), m, domain.TaskFilter{Limit: domain.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	if page.Next != nil {
		t.Fatal("more tasks than one page")
	}
	var out []domain.Task
	for _, task := range page.Tasks {
		if typ == "" || task.Type == typ {
			out = append(out, task)
		}
	}
	return out
}

// of keeps the tasks of the invoice.
func of(tasks []domain.Task, invoice string) []domain.Task {
	var out []domain.Task
	for _, task := range tasks {
		if task.StripeInvoiceID == invoice {
			out = append(out, task)
		}
	}
	return out
}

// withStatus keeps the tasks in the status.
func withStatus(tasks []domain.Task, status domain.TaskStatus) []domain.Task {
	var out []domain.Task
	for _, task := range tasks {
		if task.Status == status {
			out = append(out, task)
		}
	}
	return out
}

// inbox waits until mailpit holds want messages to the address from the
// merchant (the sender's display name), and returns them whole. Every
// email recoup sent was accepted by the server before the worker went
// on, so the wait is short; more than want fails at once, fewer after 10
// seconds.
func (l *loop) inbox(t *testing.T, to, merchant string, want int) []mailpittest.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []mailpittest.Message
		for _, m := range l.mail.Messages(t) {
			if len(m.To) == 1 && m.To[0].Address == to && m.From.Name == merchant {
				got = append(got, m)
			}
		}
		if len(got) > want {
			t.Fatalf("%d emails from %s to %s, want %d", len(got), merchant, to, want)
		}
		if len(got) == want {
			for i, m := range got {
				got[i] = l.mail.Read(t, m)
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d emails from %s to %s arrived, want %d", len(got), merchant, to, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// open GETs an update link through the handler, as the customer's
// browser does at the deployment's public URL, without following the
// redirect.
func (l *loop) open(t *testing.T, link string) (*http.Response, string) {
	t.Helper()
	path, ok := strings.CutPrefix(link, loopPublicURL)
	if !ok {
		t.Fatalf("the link %q is not under %s", link, loopPublicURL)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, l.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// portalRequests are the portal session requests the scripted API got.
func (l *loop) portalRequests() []stripetest.Request {
	var out []stripetest.Request
	for _, r := range l.api.Requests() {
		if r.Method == http.MethodPost && r.Path == "/v1/billing_portal/sessions" {
			out = append(out, r)
		}
	}
	return out
}

// TestCustomerLoopOverStripeAndSMTP follows one customer through the
// loop recoup closes, on both adapters, over the scripted Stripe API and
// a real SMTP server: an expired card is declined for good, so no retry
// is planned and the email asks for a new card, with an update link; the
// link opens a Stripe customer portal session on the merchant's account
// (and a tampered one, or one spliced onto another merchant, opens
// nothing); the customer's new card makes a retry due at once, which
// pays, and the invoice counts as recovered by the card update.
func TestCustomerLoopOverStripeAndSMTP(t *testing.T) {
	for name, storage := range e2eStorages() {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			ctx := t.Context()
			l := newLoop(t, storage(t))
			acme, other := l.merchant(t, "Acme Books"), l.merchant(t, "Other Shop")
			start := l.clock.Now()

			// Jenny's card has expired: a hard decline.
			inv := l.failedInvoice(acme, "cus_jenny", "jenny@example.com", 5000, "jpy", "expired_card")
			l.failed(t, acme, inv)
			l.drain(t)
			is.Equal(len(withStatus(of(l.tasks(t, acme, domain.TypeRetryPayment), inv.ID), domain.StatusPending)), 0) // no retry: blocked
			sent := of(l.tasks(t, acme, domain.TypeNotifyPaymentFailed), inv.ID)
			is.Equal(len(sent), 1)
			is.Equal(sent[0].Status, domain.StatusSucceeded) // the email went out
			is.Equal(sent[0].DeclineCode, "expired_card")    // after reading the decline from Stripe

			mail := l.inbox(t, "jenny@example.com", "Acme Books", 1)[0]
			is.Equal(mail.From.Address, loopSender)                               // from the deployment's address
			is.Equal(mail.Subject, "Please update your card for Acme Books")      // asks for a new card
			is.True(strings.Contains(mail.Text, "¥5,000"))                        // the amount in yen, which has no minor unit
			is.True(strings.Contains(mail.Text, "Add a new card"))                // a plain-text part
			is.True(strings.Contains(mail.HTML, "<strong>¥5,000</strong>"))       // and an HTML part
			is.True(!strings.Contains(mail.Text+mail.HTML, inv.HostedInvoiceURL)) // the update link replaces the hosted invoice
			links := updateLinkPattern.FindAllString(mail.Text, -1)
			is.Equal(len(links), 1) // one call to action
			link := links[0]
			is.Equal(updateLinkPattern.FindAllString(mail.HTML, -1), []string{link})      // the same in both parts
			is.True(strings.Contains(mail.HTML, `<a href="`+link+`">Add a new card</a>`)) // as the HTML part's link
			headers := l.mail.Headers(t, mail)
			is.Equal(len(headers["List-Unsubscribe"]), 0) // a transactional email: no unsubscribe header

			// The same customer id at another merchant gets that merchant's
			// email and link.
			theirs := l.failedInvoice(other, "cus_jenny", "jenny@example.com", 2000, "usd", "insufficient_funds")
			l.failed(t, other, theirs)
			l.drain(t)
			otherMail := l.inbox(t, "jenny@example.com", "Other Shop", 1)[0]
			is.True(strings.Contains(otherMail.Text, "$20.00"))
			otherLink := updateLinkPattern.FindString(otherMail.Text)
			is.True(otherLink != "" && otherLink != link)

			// Jenny follows the link: a portal session on Acme's account,
			// for her, returning to the invoice.
			res, _ := l.open(t, link)
			is.Equal(res.StatusCode, http.StatusSeeOther)
			sessions := l.api.PortalSessions(acme.StripeAccountID)
			is.Equal(len(sessions), 1)
			is.Equal(res.Header.Get("Location"), sessions[0].URL) // to the session Stripe made
			is.Equal(sessions[0].Customer, "cus_jenny")
			is.Equal(sessions[0].ReturnURL, inv.HostedInvoiceURL)
			reqs := l.portalRequests()
			is.Equal(len(reqs), 1)
			is.Equal(reqs[0].Account, acme.StripeAccountID) // Stripe-Account: Acme's connected account
			is.Equal(reqs[0].Form.Get("customer"), "cus_jenny")
			is.Equal(reqs[0].Form.Get("return_url"), inv.HostedInvoiceURL)

			// A tampered link opens nothing and says nothing.
			token := strings.TrimPrefix(link, loopPublicURL+"/update/")
			_, nothing := l.open(t, loopPublicURL+"/update/nothing")
			for _, bad := range []string{flipChar(token, len(token)/2), flipChar(token, len(token)-1),
				spliceMerchant(t, token, other.ID)} {
				res, body := l.open(t, loopPublicURL+"/update/"+bad)
				is.Equal(res.StatusCode, http.StatusNotFound)
				is.Equal(body, nothing) // the page of any link that does not exist
				is.True(strings.HasPrefix(res.Header.Get("Content-Type"), "text/html"))
				is.True(strings.Contains(body, "This link is not valid or has expired."))
				for _, secret := range []string{bad, token, "cus_jenny", inv.ID, string(acme.ID), string(other.ID),
					acme.StripeAccountID, other.StripeAccountID, "signature", "expired_card"} {
					is.True(!strings.Contains(body, secret)) // the page reveals nothing
				}
			}
			is.Equal(len(l.portalRequests()), 1)                          // no portal for a bad link
			is.Equal(len(l.api.PortalSessions(other.StripeAccountID)), 0) // Acme's link spliced onto Other Shop opens nothing there

			// Other Shop's link opens Other Shop's portal, not Acme's.
			res, _ = l.open(t, otherLink)
			is.Equal(res.StatusCode, http.StatusSeeOther)
			theirSessions := l.api.PortalSessions(other.StripeAccountID)
			is.Equal(len(theirSessions), 1)
			is.Equal(res.Header.Get("Location"), theirSessions[0].URL)
			is.Equal(theirSessions[0].ReturnURL, theirs.HostedInvoiceURL)
			is.Equal(len(l.api.PortalSessions(acme.StripeAccountID)), 1)
			reqs = l.portalRequests()
			is.Equal(len(reqs), 2)
			is.Equal(reqs[1].Account, other.StripeAccountID)

			// In the portal, Jenny sets a new default card: Stripe sends
			// customer.updated, and the retry is due at once.
			l.clock.Add(20 * time.Minute)
			l.deliver(t, stripetest.Event{Type: domain.EventCustomerUpdated, Account: acme.StripeAccountID,
				Object: stripetest.Customer{ID: "cus_jenny", Email: "jenny@example.com", DefaultPaymentMethod: stripetest.NewID("pm_"),
					Delinquent: true, Created: start.AddDate(0, -1, 0)},
				PreviousAttributes: map[string]any{"invoice_settings": map[string]any{"default_payment_method": nil}}})
			retries := withStatus(of(l.tasks(t, acme, domain.TypeRetryPayment), inv.ID), domain.StatusPending)
			is.Equal(len(retries), 1)                      // one retry
			is.True(retries[0].RunAt.Equal(l.clock.Now())) // due now
			waiting := withStatus(of(l.tasks(t, other, domain.TypeRetryPayment), theirs.ID), domain.StatusPending)
			is.Equal(len(waiting), 1)
			is.True(waiting[0].RunAt.After(l.clock.Now())) // Other Shop's invoice keeps its own schedule

			l.drain(t)
			paid, ok := l.api.Invoice(acme.StripeAccountID, inv.ID)
			is.True(ok)
			is.Equal(paid.Status, "paid") // the retry paid it
			var pays []stripetest.Request
			for _, r := range l.api.Requests() {
				if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/pay") {
					pays = append(pays, r)
				}
			}
			is.Equal(len(pays), 1) // one payment, the card update's
			is.Equal(pays[0].Path, "/v1/invoices/"+inv.ID+"/pay")
			is.Equal(pays[0].Account, acme.StripeAccountID)
			done, err := l.svc.Tasks().Get(ctx, acme, retries[0].ID)
			is.NoErr(err)
			is.Equal(done.Status, domain.StatusSucceeded)

			// Stripe reports the payment.
			l.deliver(t, stripetest.Event{Type: domain.EventInvoicePaid, Account: acme.StripeAccountID, Object: paid})
			stats, err := l.svc.Tasks().Stats(ctx, acme, nil, nil)
			is.NoErr(err)
			is.Equal(stats.ByCurrency["jpy"], domain.CurrencyRecovery{FailedAmount: 5000, RecoveredAmount: 5000}) // recovered
			is.Equal(stats.Figures.BySource[domain.RecoveredByCardUpdate], 1)                                     // by the card update
			is.Equal(stats.Figures.BySource[domain.RecoveredByRecoupRetry], 0)
			is.Equal(stats.Figures.ByDeclineCode["expired_card"], domain.DeclineFigures{FailedInvoices: 1, RecoveredInvoices: 1})

			// Paid: the reminders are cancelled, and no email follows.
			l.clock.Add(8 * 24 * time.Hour)
			l.drain(t)
			for _, r := range of(l.tasks(t, acme, domain.TypeNotifyReminder), inv.ID) {
				is.Equal(r.Status, domain.StatusCancelled)
			}
			l.inbox(t, "jenny@example.com", "Acme Books", 1)

			// Thirty days after its email, the link has expired.
			l.clock.Add(start.Add(domain.UpdateLinkLifetime).Sub(l.clock.Now()))
			res, _ = l.open(t, link)
			is.Equal(res.StatusCode, http.StatusNotFound)
			is.Equal(len(l.api.PortalSessions(acme.StripeAccountID)), 1) // and opens nothing
		})
	}
}

// TestEmailCapOverSMTP: one customer of one merchant gets at most
// max_emails_per_customer_per_week emails in any 7 days, whatever fails
// and reminds, counted in what the SMTP server received; the others end
// cancelled with reason email_cap. Another merchant's emails to the same
// customer count apart, and the week slides.
func TestEmailCapOverSMTP(t *testing.T) {
	for name, storage := range e2eStorages() {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			l := newLoop(t, storage(t))
			acme, other := l.merchant(t, "Acme Books"), l.merchant(t, "Other Shop")
			policy := domain.DefaultDunningPolicy()
			policy.Emails.ReminderHours = []int{1, 2}
			policy.MaxEmailsPerCustomerPerWeek = 2
			_, err := l.svc.Policies().Set(t.Context(), acme, policy)
			is.NoErr(err)
			const capped = 2

			// Three invoices fail at once, each with its email and two
			// reminders: nine emails wanted, two allowed.
			start := l.clock.Now()
			for range 3 {
				l.failed(t, acme, l.failedInvoice(acme, "cus_ada", "ada@example.com", 1500, "eur", "insufficient_funds"))
			}
			l.drain(t) // the three emails, run concurrently
			l.inbox(t, "ada@example.com", "Acme Books", capped)
			retries := withStatus(l.tasks(t, acme, domain.TypeRetryPayment), domain.StatusPending)
			is.Equal(len(retries), 3) // a capped email still plans its invoice's retry
			for _, r := range retries {
				is.Equal(r.DeclineCode, "insufficient_funds")                                                                     // from the decline it read
				is.True(r.RunAt.Equal(start.Add(time.Duration(policy.DelaysByDeclineCode["insufficient_funds"][0]) * time.Hour))) // on that code's schedule
			}
			for range 2 {
				l.clock.Add(time.Hour)
				l.drain(t) // the reminders
				l.inbox(t, "ada@example.com", "Acme Books", capped)
			}
			emails := func() []domain.Task {
				var out []domain.Task
				for _, task := range l.tasks(t, acme, "") {
					if task.Type.IsNotification() && task.StripeCustomerID == "cus_ada" {
						out = append(out, task)
					}
				}
				return out
			}
			all := emails()
			is.Equal(len(all), 9)
			is.Equal(len(withStatus(all, domain.StatusSucceeded)), capped)
			for _, task := range withStatus(all, domain.StatusCancelled) {
				is.Equal(task.Reason, domain.ReasonEmailCap) // each of the others, capped
			}
			is.Equal(len(withStatus(all, domain.StatusCancelled)), 9-capped)

			// Other Shop's emails to the same customer count apart.
			l.failed(t, other, l.failedInvoice(other, "cus_ada", "ada@example.com", 900, "usd", "insufficient_funds"))
			l.drain(t)
			l.inbox(t, "ada@example.com", "Other Shop", 1)

			// A week after the first emails, a new failure is emailed again.
			l.clock.Add(7*24*time.Hour - 2*time.Hour + time.Minute)
			late := l.failedInvoice(acme, "cus_ada", "ada@example.com", 1500, "eur", "insufficient_funds")
			l.failed(t, acme, late)
			l.drain(t)
			l.inbox(t, "ada@example.com", "Acme Books", capped+1)
			var lateMail []domain.Task
			for _, task := range of(emails(), late.ID) {
				if task.Type == domain.TypeNotifyPaymentFailed {
					lateMail = append(lateMail, task)
				}
			}
			is.Equal(len(lateMail), 1)
			is.Equal(lateMail[0].Status, domain.StatusSucceeded) // sent: the first emails are out of the week

			// In any 7 days, at most the cap went out.
			var sentAt []time.Time
			for _, task := range withStatus(emails(), domain.StatusSucceeded) {
				sentAt = append(sentAt, task.UpdatedAt)
			}
			for _, end := range sentAt {
				n := 0
				for _, at := range sentAt {
					if !at.After(end) && at.After(end.Add(-7*24*time.Hour)) {
						n++
					}
				}
				is.True(n <= capped) // within the cap
			}
		})
	}
}

// flipChar changes the token's character at i to another one of the
// alphabet.
func flipChar(token string, i int) string {
	b := []byte(token)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// spliceMerchant puts another merchant's id in place of the token's
// (bytes 1 to 16 of the token, after its version), keeping its MAC: a
// customer who tries to open their portal at another merchant.
func spliceMerchant(t *testing.T, token string, merchant domain.MerchantID) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 17 {
		t.Fatalf("not an update link token: %q", token)
	}
	id := uuid.MustParse(string(merchant))
	copy(b[1:17], id[:])
	return base64.RawURLEncoding.EncodeToString(b)
}
