package postgres_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
)

// twoStores returns two stores on one fresh schema, each on a pool of its
// own: two processes, as far as the database can tell.
func twoStores(t *testing.T) (*postgres.Store, *postgres.Store, string) {
	t.Helper()
	schemaURL, db := newSchema(t, pgtest.NewDatabase(t), 12)
	other := pgtest.Open(t, withParam(t, schemaURL, "pool_max_conns", "12"))
	return postgres.New(db), postgres.New(other), schemaURL
}

// TestEmailCapAcrossProcesses: reservations for one customer from two
// pools at once stop at the cap.
func TestEmailCapAcrossProcesses(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	a, b, _ := twoStores(t)
	m := createMerchant(t, a).ID
	const n, limit = 20, 3
	var wg sync.WaitGroup
	results := make(chan error, n)
	granted := make(chan bool, n)
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			ok, err := st.Emails().ReserveEmail(ctx, m, "cus_shared", now().Add(time.Duration(i)*time.Millisecond), 7*24*time.Hour, limit)
			results <- err
			granted <- ok
		})
	}
	wg.Wait()
	close(results)
	close(granted)
	for err := range results {
		is.NoErr(err)
	}
	count := 0
	for ok := range granted {
		if ok {
			count++
		}
	}
	is.Equal(count, limit) // exactly the cap, whichever process asked
}

// TestEndpointLimitAcrossProcesses: creations of one merchant's endpoints
// from two pools at once stop at the limit.
func TestEndpointLimitAcrossProcesses(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	a, b, _ := twoStores(t)
	m := createMerchant(t, a).ID
	const n = domain.MaxEndpointsPerShop + 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			e, err := domain.NewWebhookEndpoint(m, "https://hooks.example/limit", []string{"*"}, now())
			if err == nil {
				_, err = st.Endpoints().CreateEndpoint(ctx, m, e)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	created := 0
	for err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, domain.ErrConflict):
			t.Fatalf("create endpoint: %v", err)
		}
	}
	is.Equal(created, domain.MaxEndpointsPerShop) // the limit, and the others refused
	list, err := a.Endpoints().ListEndpoints(ctx, m)
	is.NoErr(err)
	is.Equal(len(list), domain.MaxEndpointsPerShop)
}

// TestFinishWithTwoMessages: an end_dunning's success reports
// task.succeeded and dunning.exhausted, each to the endpoints subscribed
// to it, in Finish's statement.
func TestFinishWithTwoMessages(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	st := postgres.New(newSchemaDB(t, pgtest.NewDatabase(t), 4))
	m := createMerchant(t, st).ID
	subscribe := func(events ...string) domain.WebhookEndpoint {
		e, err := domain.NewWebhookEndpoint(m, "https://hooks.example/two", events, now())
		is.NoErr(err)
		_, err = st.Endpoints().CreateEndpoint(ctx, m, e)
		is.NoErr(err)
		return e
	}
	all := subscribe("*")
	exhausted := subscribe(domain.OutboundDunningExhausted)
	failures := subscribe(domain.OutboundTaskFailed)

	claimAt := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	task := newTask(m, domain.TypeEndDunning, "in_two", 1)
	task.RunAt = claimAt.Add(-time.Minute)
	_, err := st.Tasks().Schedule(ctx, m, []domain.Task{task})
	is.NoErr(err)
	claimed, err := st.Queue().ClaimDue(ctx, claimAt, time.Minute, 1)
	is.NoErr(err)
	is.Equal(len(claimed), 1)
	at := claimAt.Add(-time.Second)
	msgs := []domain.OutboundMessage{
		{Type: domain.OutboundTaskSucceeded, Payload: []byte(`{"n":1}`), At: at},
		{Type: domain.OutboundDunningExhausted, Payload: []byte(`{"n":2}`), At: at},
	}
	res := domain.TaskResult{Status: domain.StatusSucceeded, At: now(), Messages: msgs}
	is.NoErr(st.Queue().Finish(ctx, m, task.ID, claimed[0].Attempts, res))
	is.True(errors.Is(st.Queue().Finish(ctx, m, task.ID, claimed[0].Attempts, res), domain.ErrConflict)) // once

	deliveries, err := st.Outbox().ClaimDeliveries(ctx, claimAt, time.Minute, 10)
	is.NoErr(err)
	got := map[domain.EndpointID][]string{}
	for _, d := range deliveries {
		got[d.EndpointID] = append(got[d.EndpointID], d.EventType+" "+string(d.Payload))
	}
	is.Equal(len(deliveries), 3)                                       // both to *, one to dunning.exhausted, none to task.failed
	is.Equal(len(got[all.ID]), 2)                                      // each message once to *
	is.Equal(got[exhausted.ID], []string{`dunning.exhausted {"n":2}`}) // the subscribed one only
	is.Equal(len(got[failures.ID]), 0)
}

// TestGoneEndpointHoldsItsDeliveries: a 410 disables the endpoint and
// takes its other pending deliveries out of the claim's indexes; another
// endpoint's deliveries go on, and a deleted endpoint's are gone.
func TestGoneEndpointHoldsItsDeliveries(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	db := newSchemaDB(t, pgtest.NewDatabase(t), 4)
	st := postgres.New(db)
	m := createMerchant(t, st).ID
	gone, err := domain.NewWebhookEndpoint(m, "https://hooks.example/gone", []string{domain.OutboundTaskFailed}, now())
	is.NoErr(err)
	_, err = st.Endpoints().CreateEndpoint(ctx, m, gone)
	is.NoErr(err)
	kept, err := domain.NewWebhookEndpoint(m, "https://hooks.example/kept", []string{"*"}, now())
	is.NoErr(err)
	_, err = st.Endpoints().CreateEndpoint(ctx, m, kept)
	is.NoErr(err)

	t0 := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for i := range 3 {
		n, err := st.Outbox().Enqueue(ctx, m, domain.OutboundMessage{Type: domain.OutboundTaskFailed, Payload: []byte(`{}`),
			At: t0.Add(time.Duration(i) * time.Second)})
		is.NoErr(err)
		is.Equal(n, 2)
	}
	first, err := st.Outbox().ClaimDeliveries(ctx, t0, time.Minute, 10)
	is.NoErr(err)
	is.Equal(len(first), 2) // the first message, to both
	for _, d := range first {
		res := domain.DeliveryResult{Status: domain.DeliveryDelivered, StatusCode: 200, At: t0}
		if d.EndpointID == gone.ID {
			res = domain.DeliveryResult{Status: domain.DeliveryFailed, StatusCode: 410, Error: "HTTP 410", At: t0, DisableEndpoint: true}
		}
		is.NoErr(st.Outbox().FinishDelivery(ctx, d.ID, d.Attempts, res))
	}
	var held int
	is.NoErr(db.NewRaw(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ? AND endpoint_disabled`, gone.ID).Scan(ctx, &held))
	is.Equal(held, 3) // the 410's own and the two pending ones
	later, err := st.Outbox().ClaimDeliveries(ctx, t0.Add(time.Hour), time.Minute, 10)
	is.NoErr(err)
	is.Equal(len(later), 2) // the other endpoint's two, none of the gone one's
	for _, d := range later {
		is.Equal(d.EndpointID, kept.ID)
	}
	page, err := st.Endpoints().Deliveries(ctx, m, gone.ID, domain.DeliveryFilter{Limit: 10})
	is.NoErr(err)
	is.Equal(len(page.Deliveries), 3) // still listed
	is.Equal(page.Deliveries[0].Status, domain.DeliveryPending)

	is.NoErr(st.Endpoints().DeleteEndpoint(ctx, m, gone.ID))
	var left int
	is.NoErr(db.NewRaw(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ?`, gone.ID).Scan(ctx, &left))
	is.Equal(left, 0) // deleted with its endpoint
	d := later[0]     // claimed, and then its endpoint is deleted
	is.NoErr(st.Endpoints().DeleteEndpoint(ctx, m, d.EndpointID))
	err = st.Outbox().FinishDelivery(ctx, d.ID, d.Attempts, domain.DeliveryResult{Status: domain.DeliveryDelivered, At: t0})
	is.True(errors.Is(err, domain.ErrConflict)) // a deleted delivery has no claim left
}
