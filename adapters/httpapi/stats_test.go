package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/clocktest"
	"github.com/recoupdev/recoup/internal/stripetest"
	"github.com/recoupdev/recoup/ports"
)

// figuresOut is the part of the stats answer that depends on the span.
type figuresOut struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Series []struct {
		Date            string `json:"date"`
		Currency        string `json:"currency"`
		FailedAmount    int64  `json:"failed_amount"`
		RecoveredAmount int64  `json:"recovered_amount"`
	} `json:"series"`
	ByDeclineCode map[string]struct {
		FailedInvoices    int `json:"failed_invoices"`
		RecoveredInvoices int `json:"recovered_invoices"`
	} `json:"by_decline_code"`
	BySource map[string]int `json:"by_source"`
}

// dates lists the series' days.
func (f figuresOut) dates() []string {
	var out []string
	for _, row := range f.Series {
		out = append(out, row.Date)
	}
	return out
}

// record puts facts of a new invoice of m straight into the ledger.
func (e *env) record(m domain.MerchantID, facts ...domain.InvoiceFact) {
	e.t.Helper()
	recordInvoice(e.t, e.mem.Ledger(), m, facts...)
}

func recordInvoice(t testing.TB, l ports.InvoiceLedger, m domain.MerchantID, facts ...domain.InvoiceFact) {
	t.Helper()
	inv := stripetest.NewID("in_")
	for _, f := range facts {
		f.InvoiceID = inv
		if _, err := l.Record(context.Background(), m, f); err != nil {
			t.Fatalf("record %s: %v", f.Kind, err)
		}
	}
}

func failedOn(at time.Time, amount int64) domain.InvoiceFact {
	return domain.InvoiceFact{Kind: domain.FactFailed, At: at, Currency: "usd", AmountDue: amount, AttemptCount: 1}
}

func paidOn(at time.Time, amount int64) domain.InvoiceFact {
	return domain.InvoiceFact{Kind: domain.FactPaid, At: at, Amount: amount, AttemptCount: 1}
}

// stats gets the caller's stats with query q and decodes a 200 answer.
func (e *env) stats(key, q string) figuresOut {
	e.t.Helper()
	r := e.api(http.MethodGet, "/api/stats"+q, key)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET /api/stats%s: %d %s", q, r.status, r.body)
	}
	var f figuresOut
	r.decode(e.t, &f)
	return f
}

func TestStatsRangeQuery(t *testing.T) {
	is := is.New(t)
	now := time.Date(2026, 3, 4, 15, 4, 5, 0, time.UTC)
	e := newEnv(t, withClock(clocktest.New(now)))
	a := e.createMerchant("A")
	may := func(d int) time.Time { return time.Date(2025, 5, d, 0, 0, 0, 0, time.UTC) }
	e.record(a.ID, failedOn(may(1).Add(-time.Microsecond), 1)) // April 30th
	e.record(a.ID, failedOn(may(1), 2))
	e.record(a.ID, failedOn(may(10).Add(23*time.Hour+59*time.Minute), 4)) // late on the last day
	e.record(a.ID, failedOn(may(11), 8))

	f := e.stats(a.Key, "?from=2025-05-01&to=2025-05-10")
	is.Equal(f.From, "2025-05-01")
	is.Equal(f.To, "2025-05-10")
	is.Equal(f.dates(), []string{"2025-05-01", "2025-05-10"}) // both days included, whole
	is.Equal(f.Series[0].FailedAmount, int64(2))
	is.Equal(f.Series[1].FailedAmount, int64(4))
	f = e.stats(a.Key, "?from=2025-05-10&to=2025-05-10")
	is.Equal(f.dates(), []string{"2025-05-10"}) // one day
	f = e.stats(a.Key, "?to=2025-05-10")
	is.Equal(f.From, "2025-04-11") // the 30 days up to to
	is.Equal(f.dates(), []string{"2025-04-30", "2025-05-01", "2025-05-10"})

	// Without from or to, the last 30 days up to today (UTC).
	today := domain.Day(now)
	e.record(a.ID, failedOn(today.Add(time.Minute), 16))
	e.record(a.ID, failedOn(today.AddDate(0, 0, -29), 32))
	e.record(a.ID, failedOn(today.AddDate(0, 0, -30), 64))
	f = e.stats(a.Key, "")
	day := func(t time.Time) string { return t.Format(domain.DateLayout) }
	is.Equal(f.From, day(today.AddDate(0, 0, -29)))
	is.Equal(f.To, day(today))
	is.Equal(f.dates(), []string{day(today.AddDate(0, 0, -29)), day(today)}) // the 30th day back is left out
	f = e.stats(a.Key, "?from="+day(today.AddDate(0, 0, -30)))
	is.Equal(f.To, day(today)) // from alone runs to today
	is.Equal(len(f.Series), 3)
}

func TestStatsBadRange(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	a := e.createMerchant("A")
	for _, c := range []struct{ query, says string }{
		{"?from=2025-13-01", `invalid from "2025-13-01": must be a date written YYYY-MM-DD`},
		{"?to=2025-02-29", `invalid to "2025-02-29": must be a date written YYYY-MM-DD`}, // not a leap year
		{"?from=2025-5-01", `invalid from "2025-5-01"`},
		{"?from=yesterday", `invalid from "yesterday"`},
		{"?from=2025-05-01T00:00:00Z", `invalid from "2025-05-01T00:00:00Z"`}, // a time is not a day
		{"?from=", `invalid from ""`},
		{"?to=2025-05-01&to=2025-05-02", `query parameter "to" given more than once`},
		{"?from=2025-05-02&to=2025-05-01", "from 2025-05-02 is after to 2025-05-01"},
		{"?from=2025-01-01&to=2026-01-02", "from 2025-01-01 to 2026-01-02 spans more than 366 days"},
		{"?from=2999-01-01", "from 2999-01-01 is after to"}, // today is the default to
	} {
		r := e.api(http.MethodGet, "/api/stats"+c.query, a.Key)
		is.Equal(r.status, http.StatusBadRequest) // a bad span is the client's mistake
		if msg := r.errorMessage(t); !strings.Contains(msg, c.says) {
			t.Errorf("%s: error %q, want it to say %q", c.query, msg, c.says)
		}
	}
	f := e.stats(a.Key, "?from=2024-01-01&to=2024-12-31")
	is.Equal(f.From, "2024-01-01") // 366 days, the most
	f = e.stats(a.Key, "?from=2025-01-01&to=2025-12-31&status=whatever")
	is.Equal(f.To, "2025-12-31") // other parameters are not the stats' business
}

func TestStatsFiguresJSON(t *testing.T) {
	is := is.New(t)
	e := newEnv(t)
	a, b := e.createMerchant("A"), e.createMerchant("B")
	day := time.Date(2025, 5, 2, 0, 0, 0, 0, time.UTC)
	e.record(a.ID, failedOn(day, 5000),
		domain.InvoiceFact{Kind: domain.FactDeclined, At: day, DeclineCode: "insufficient_funds"},
		domain.InvoiceFact{Kind: domain.FactPaid, At: day.Add(26 * time.Hour), Amount: 4500, AttemptCount: 2})
	e.record(a.ID, domain.InvoiceFact{Kind: domain.FactFailed, At: day, Currency: "eur", AmountDue: 700, AttemptCount: 1})

	r := e.api(http.MethodGet, "/api/stats?from=2025-05-01&to=2025-05-31", a.Key)
	is.Equal(r.status, http.StatusOK)
	is.Equal(strings.TrimSpace(string(r.body)), `{"by_currency":{"eur":{"failed_amount":700,"recovered_amount":0,"recovery_rate":0},"usd":{"failed_amount":5000,"recovered_amount":4500,"recovery_rate":0.9}},`+
		`"tasks_by_status":{"cancelled":0,"failed":0,"pending":0,"running":0,"succeeded":0},"from":"2025-05-01","to":"2025-05-31",`+
		`"series":[{"date":"2025-05-02","currency":"eur","failed_amount":700,"recovered_amount":0},{"date":"2025-05-02","currency":"usd","failed_amount":5000,"recovered_amount":0},{"date":"2025-05-03","currency":"usd","failed_amount":0,"recovered_amount":4500}],`+
		`"by_decline_code":{"insufficient_funds":{"failed_invoices":1,"recovered_invoices":1},"unknown":{"failed_invoices":1,"recovered_invoices":0}},`+
		`"by_source":{"card_update":0,"customer_paid":0,"recoup_retry":0,"stripe_retry":1}}`) // every field, by day then currency

	r = e.api(http.MethodGet, "/api/stats?from=2025-05-01&to=2025-05-31", b.Key)
	is.Equal(r.status, http.StatusOK)
	is.Equal(strings.TrimSpace(string(r.body)), `{"by_currency":{},"tasks_by_status":{"cancelled":0,"failed":0,"pending":0,"running":0,"succeeded":0},"from":"2025-05-01","to":"2025-05-31",`+
		`"series":[],"by_decline_code":{},"by_source":{"card_update":0,"customer_paid":0,"recoup_retry":0,"stripe_retry":0}}`) // empty, never null; every source
}

func TestStatsShowOnlyTheCallersFigures(t *testing.T) {
	is := is.New(t)
	now := time.Date(2026, 3, 4, 15, 4, 5, 0, time.UTC)
	e := newEnv(t, withClock(clocktest.New(now)))
	a, b := e.createMerchant("A"), e.createMerchant("B")
	today := domain.Day(now)
	same := failedOn(today, 100)
	same.InvoiceID = stripetest.NewID("in_")
	for _, m := range []domain.MerchantID{a.ID, b.ID} { // the same invoice id at both
		_, err := e.mem.Ledger().Record(context.Background(), m, same)
		is.NoErr(err)
	}
	e.record(b.ID, failedOn(today, 9000),
		domain.InvoiceFact{Kind: domain.FactDeclined, At: today, DeclineCode: "stolen_card"},
		paidOn(today.Add(time.Minute), 9000))

	for _, q := range []string{"", "?from=" + today.AddDate(-1, 0, 1).Format(domain.DateLayout) + "&to=" + today.Format(domain.DateLayout)} {
		f := e.stats(a.Key, q)
		is.Equal(len(f.Series), 1)
		for _, row := range f.Series {
			is.Equal(row.FailedAmount, int64(100)) // A's own failure only
			is.Equal(row.RecoveredAmount, int64(0))
		}
		_, seen := f.ByDeclineCode["stolen_card"]
		is.True(!seen)                           // nor B's decline codes
		is.Equal(f.BySource["customer_paid"], 0) // nor B's recovery
	}
}

// TestOpenAPIStats checks the stats' answers, with figures in them, and
// its refusals of bad spans against the document.
func TestOpenAPIStats(t *testing.T) {
	is := is.New(t)
	c := newOAChecker(t)
	s := newOAServer(t, oaAdmin)
	var m struct {
		ID  domain.MerchantID `json:"id"`
		Key string            `json:"api_key"`
	}
	body := jsonBody(t, map[string]string{"name": "Erin", "stripe_account_id": stripetest.NewID("acct_")})
	c.do(s, exchange{method: "POST", target: "/admin/merchants", body: body, header: append(bearer(oaAdmin), "Content-Type", "application/json"), want: 201}).decode(t, &m)
	day := time.Date(2025, 5, 2, 0, 0, 0, 0, time.UTC)
	recordInvoice(t, s.mem.Ledger(), m.ID, failedOn(day, 5000),
		domain.InvoiceFact{Kind: domain.FactDeclined, At: day, DeclineCode: "insufficient_funds"},
		domain.InvoiceFact{Kind: domain.FactPaid, At: day.Add(26 * time.Hour), Amount: 4500, AttemptCount: 2})
	recordInvoice(t, s.mem.Ledger(), m.ID, failedOn(day, 700))

	k := bearer(m.Key)
	var f figuresOut
	c.do(s, exchange{method: "GET", target: "/api/stats?from=2025-05-01&to=2025-05-31", header: k, want: 200}).decode(t, &f)
	is.Equal(len(f.Series), 2)        // an answer with figures
	is.Equal(len(f.ByDeclineCode), 2) // of both kinds
	c.do(s, exchange{method: "GET", target: "/api/stats?to=2025-05-31", header: k, want: 200})
	c.do(s, exchange{method: "GET", target: "/api/stats?from=" + time.Now().UTC().AddDate(0, 0, -3).Format(domain.DateLayout), header: k, want: 200})
	c.do(s, exchange{method: "GET", target: "/api/stats", header: k, want: 200})
	c.do(s, exchange{method: "GET", target: "/api/stats?from=2025-13-01", header: k, want: 400, invalid: true})
	c.do(s, exchange{method: "GET", target: "/api/stats?to=2025-02-30", header: k, want: 400, invalid: true})
	c.do(s, exchange{method: "GET", target: "/api/stats?from=yesterday", header: k, want: 400, invalid: true})
	c.do(s, exchange{method: "GET", target: "/api/stats?from=2025-05-02&to=2025-05-01", header: k, want: 400}) // the document cannot tell
	c.do(s, exchange{method: "GET", target: "/api/stats?from=2024-01-01&to=2025-01-01", header: k, want: 400})
}
