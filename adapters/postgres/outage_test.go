package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"testing"

	"github.com/matryer/is"
	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/ports"
)

// outage is a store that reaches PostgreSQL through a proxy the test can
// cut, and a direct connection to look at what was kept.
type outage struct {
	t        *testing.T
	proxy    *tcpProxy
	st       *postgres.Store // through the proxy
	direct   *bun.DB
	merchant domain.Merchant
	event    string
}

func newOutage(t *testing.T, poolSize int) *outage {
	t.Helper()
	schemaURL, direct := newSchema(t, pgtest.NewDatabase(t), 4)
	u, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.addr
	st := postgres.New(pgtest.Open(t, withParam(t, u.String(), "pool_max_conns", strconv.Itoa(poolSize))))
	return &outage{
		t: t, proxy: proxy, st: st, direct: direct,
		merchant: createMerchant(t, postgres.New(direct)), event: "evt_outage",
	}
}

// process handles the test's event as the webhook does: the lock, then a
// task and the invoice's record, in one unit of work; during runs before
// the commit.
func (o *outage) process(ctx context.Context, during func()) (bool, error) {
	m := o.merchant.ID
	var won bool
	err := o.st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
		ok, err := tx.Events().AttemptEventLock(ctx, o.event)
		if err != nil || !ok {
			return err
		}
		won = true
		task := newTask(m, domain.TypeNotifyPaymentFailed, "in_outage", 1)
		if _, err := tx.Tasks().Schedule(ctx, m, []domain.Task{task}); err != nil {
			return err
		}
		fact := domain.InvoiceFact{Kind: domain.FactFailed, InvoiceID: "in_outage", AmountDue: 2000, Currency: "usd",
			At: now(), AttemptCount: 1}
		if _, err := tx.Ledger().Record(ctx, m, fact); err != nil {
			return err
		}
		during()
		return nil
	})
	return won, err
}

// kept counts, through the direct connection, the event's lock row, tasks
// and invoice records.
func (o *outage) kept(ctx context.Context) [3]int {
	o.t.Helper()
	var n [3]int
	if err := o.direct.NewRaw(`SELECT
		(SELECT count(*) FROM processed_events WHERE event_id = ?),
		(SELECT count(*) FROM tasks WHERE merchant_id = ?),
		(SELECT count(*) FROM invoices WHERE merchant_id = ?)`, o.event, o.merchant.ID, o.merchant.ID).
		Scan(ctx, &n[0], &n[1], &n[2]); err != nil {
		o.t.Fatalf("count rows: %v", err)
	}
	return n
}

// TestOutage cuts the connection in the middle of an event's transaction
// and keeps it cut: every failure is ErrUnavailable and leaves nothing of
// the event; once the proxy is back, the same store processes the same
// event.
func TestOutage(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	// One connection, so that the test knows which connections the cut
	// broke; TestOutageStaleConnections covers a pool of them.
	o := newOutage(t, 1)
	is.NoErr(o.st.Ping(ctx)) // the proxy forwards

	won, err := o.process(ctx, o.proxy.cut)
	is.True(won)                                   // the lock was taken before the cut
	is.True(errors.Is(err, domain.ErrUnavailable)) // a commit that cannot reach the server is unavailable
	is.Equal(o.kept(ctx), [3]int{0, 0, 0})         // nothing of the event was kept

	err = o.st.Ping(ctx)
	is.True(errors.Is(err, domain.ErrUnavailable)) // Ping reports the outage
	_, err = o.process(ctx, func() {})
	is.True(errors.Is(err, domain.ErrUnavailable)) // a unit of work cannot begin
	_, err = o.st.Tasks().List(ctx, o.merchant.ID, domain.TaskFilter{})
	is.True(errors.Is(err, domain.ErrUnavailable)) // nor can a read
	is.Equal(o.kept(ctx), [3]int{0, 0, 0})         // still nothing

	o.proxy.restore(t)
	is.NoErr(o.st.Ping(ctx)) // the same store reconnects
	won, err = o.process(ctx, func() {})
	is.NoErr(err)                          // the redelivery is processed
	is.True(won)                           // and takes the lock
	is.Equal(o.kept(ctx), [3]int{1, 1, 1}) // its effects are kept, once
	won, err = o.process(ctx, func() {})
	is.NoErr(err)
	is.True(!won) // a further duplicate is turned away
}

// TestOutageStaleConnections cuts a pool of idle connections. pgx checks an
// idle connection before reuse only after a second of idleness, so a
// connection that died unnoticed can fail the first statement after the
// restore: that delivery is ErrUnavailable and keeps nothing, and Stripe's
// redelivery takes another connection. At most one redelivery per pooled
// connection fails.
func TestOutageStaleConnections(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	const pool = 4
	o := newOutage(t, pool)

	// Fill the pool: units of work that hold their connection until all
	// of them have one.
	started := make(chan struct{}, pool)
	release := make(chan struct{})
	errs := make(chan error, pool)
	for range pool {
		go func() {
			errs <- o.st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
				_, err := tx.Tasks().CountByStatus(ctx, o.merchant.ID)
				started <- struct{}{}
				<-release
				return err
			})
		}()
	}
	for range pool {
		<-started
	}
	close(release)
	for range pool {
		is.NoErr(<-errs) // every pooled connection worked
	}

	o.proxy.cut()
	o.proxy.restore(t)

	var failures int
	for {
		won, err := o.process(ctx, func() {})
		if err == nil {
			is.True(won) // the delivery that gets through takes the lock
			break
		}
		failures++
		is.True(errors.Is(err, domain.ErrUnavailable)) // a stale connection is an outage
		is.Equal(o.kept(ctx), [3]int{0, 0, 0})         // and keeps nothing
		if failures > pool {
			t.Fatalf("%d deliveries failed after the restore, more than the %d pooled connections: %v", failures, pool, err)
		}
	}
	t.Logf("%d of the deliveries after the restore met a stale connection", failures)
	is.Equal(o.kept(ctx), [3]int{1, 1, 1}) // the event's effects are kept once
}
