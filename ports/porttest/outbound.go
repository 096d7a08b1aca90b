package porttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// RunEmailLogContract checks the weekly email cap's log: reservations up
// to the cap in any window, per merchant and customer, released ones freed,
// and concurrent reservations never past the cap.
func RunEmailLogContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	const week = 7 * 24 * time.Hour
	t.Run("reservations stop at the cap within the window", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		log := st.Emails()
		cus := "cus_" + token()
		t0 := now()
		for i := range 3 {
			ok, err := log.ReserveEmail(ctx, a, cus, t0.Add(time.Duration(i)*time.Hour), week, 3)
			is.NoErr(err)
			is.True(ok) // up to the cap
		}
		ok, err := log.ReserveEmail(ctx, a, cus, t0.Add(4*time.Hour), week, 3)
		is.NoErr(err)
		is.True(!ok) // the fourth in a week is refused
		ok, err = log.ReserveEmail(ctx, b, cus, t0.Add(4*time.Hour), week, 3)
		is.NoErr(err)
		is.True(ok) // another merchant's count is its own
		ok, err = log.ReserveEmail(ctx, a, "cus_"+token(), t0.Add(4*time.Hour), week, 3)
		is.NoErr(err)
		is.True(ok) // and another customer's

		ok, err = log.ReserveEmail(ctx, a, cus, t0.Add(week), week, 3)
		is.NoErr(err)
		is.True(ok) // a week after the first, it left the window
		ok, err = log.ReserveEmail(ctx, a, cus, t0.Add(week+30*time.Minute), week, 3)
		is.NoErr(err)
		is.True(!ok) // but the second has not yet

		is.NoErr(log.ReleaseEmail(ctx, a, cus, t0.Add(week)))
		ok, err = log.ReserveEmail(ctx, a, cus, t0.Add(week+30*time.Minute), week, 3)
		is.NoErr(err)
		is.True(ok)                                                               // a released reservation frees its place
		is.NoErr(log.ReleaseEmail(ctx, a, cus, t0.Add(99*time.Hour)))             // releasing none is no error
		is.True(errors.Is(log.ReleaseEmail(ctx, "", cus, t0), domain.ErrInvalid)) // a merchant is needed
	})

	t.Run("pruning forgets only reservations before the cutoff", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		log := st.Emails()
		cus := "cus_" + token()
		t0 := now().Add(-3 * week)
		for _, m := range []domain.MerchantID{a, b} {
			for i := range 3 {
				ok, err := log.ReserveEmail(ctx, m, cus, t0.Add(time.Duration(i)*time.Hour), week, 3)
				is.NoErr(err)
				is.True(ok)
			}
		}
		recent := t0.Add(2 * week)
		ok, err := log.ReserveEmail(ctx, a, cus, recent, week, 3)
		is.NoErr(err)
		is.True(ok)

		_, err = log.PruneEmails(ctx, t0, 0)
		is.True(errors.Is(err, domain.ErrInvalid)) // a batch of at least one
		pruned := 0
		for {
			n, err := log.PruneEmails(ctx, t0.Add(week), 4)
			is.NoErr(err)
			pruned += n
			if n < 4 {
				break
			}
		}
		is.Equal(pruned, 6) // both merchants' old reservations, in batches
		n, err := log.PruneEmails(ctx, t0.Add(week), 4)
		is.NoErr(err)
		is.Equal(n, 0) // nothing left before the cutoff

		// The recent one still counts: a window that reaches back past the
		// cutoff sees it and nothing older.
		for i := range 2 {
			ok, err := log.ReserveEmail(ctx, a, cus, recent.Add(time.Duration(i+1)*time.Minute), 4*week, 3)
			is.NoErr(err)
			is.True(ok)
		}
		ok, err = log.ReserveEmail(ctx, a, cus, recent.Add(time.Hour), 4*week, 3)
		is.NoErr(err)
		is.True(!ok) // the cap counts the recent reservation and the two after it
	})

	t.Run("concurrent reservations never pass the cap", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		cus := "cus_" + token()
		const n, limit = 12, 3
		start := make(chan struct{})
		type result struct {
			ok  bool
			err error
		}
		results := make(chan result, n)
		for i := range n {
			go func() {
				<-start
				ok, err := st.Emails().ReserveEmail(ctx, m, cus, now().Add(time.Duration(i)*time.Millisecond), week, limit)
				results <- result{ok, err}
			}()
		}
		close(start)
		granted := 0
		for range n {
			r := <-results
			is.NoErr(r.err)
			if r.ok {
				granted++
			}
		}
		is.Equal(granted, limit) // exactly the cap
	})
}

// RunLeasesContract checks named leases: one holder at a time, renewal by
// the holder, expiry, release, and one winner among concurrent takers.
func RunLeasesContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	t.Run("one holder at a time until the lease ends", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		l := newStorage(t).Leases()
		name := "reconcile " + token()
		t0 := now()
		ok, err := l.AcquireLease(ctx, name, "a", t0, t0.Add(time.Minute))
		is.NoErr(err)
		is.True(ok) // a free lease is taken
		ok, err = l.AcquireLease(ctx, name, "b", t0.Add(time.Second), t0.Add(time.Minute))
		is.NoErr(err)
		is.True(!ok) // not by another while it holds
		ok, err = l.AcquireLease(ctx, name, "a", t0.Add(time.Second), t0.Add(2*time.Minute))
		is.NoErr(err)
		is.True(ok) // the holder renews it
		ok, err = l.AcquireLease(ctx, name, "b", t0.Add(time.Minute+time.Second), t0.Add(3*time.Minute))
		is.NoErr(err)
		is.True(!ok) // the renewal holds past the first end
		ok, err = l.AcquireLease(ctx, name, "b", t0.Add(2*time.Minute+time.Second), t0.Add(3*time.Minute))
		is.NoErr(err)
		is.True(ok) // an expired lease is taken over

		is.NoErr(l.ReleaseLease(ctx, name, "a")) // a former holder's release changes nothing
		ok, err = l.AcquireLease(ctx, name, "c", t0.Add(2*time.Minute+2*time.Second), t0.Add(4*time.Minute))
		is.NoErr(err)
		is.True(!ok)
		is.NoErr(l.ReleaseLease(ctx, name, "b"))
		ok, err = l.AcquireLease(ctx, name, "c", t0.Add(2*time.Minute+3*time.Second), t0.Add(4*time.Minute))
		is.NoErr(err)
		is.True(ok) // a released lease is free at once

		ok, err = l.AcquireLease(ctx, "other "+token(), "b", t0, t0.Add(time.Minute))
		is.NoErr(err)
		is.True(ok) // leases are by name
	})

	t.Run("concurrent takers have one winner", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		l := newStorage(t).Leases()
		name := "reconcile " + token()
		const n = 10
		start := make(chan struct{})
		type result struct {
			ok  bool
			err error
		}
		results := make(chan result, n)
		for i := range n {
			go func() {
				<-start
				t0 := now()
				ok, err := l.AcquireLease(ctx, name, fmt.Sprint("holder ", i), t0, t0.Add(time.Minute))
				results <- result{ok, err}
			}()
		}
		close(start)
		wins := 0
		for range n {
			r := <-results
			is.NoErr(r.err)
			if r.ok {
				wins++
			}
		}
		is.Equal(wins, 1) // exactly one holder
	})
}

// RunOutboundContract checks webhook endpoints and the outbox: endpoints
// per merchant, messages fanned out to subscribed endpoints in the unit of
// work of their change, exclusive claims with leases, attempts recorded,
// a 410 disabling an endpoint, and deliveries listed newest first.
func RunOutboundContract(t *testing.T, newStorage func(t *testing.T) ports.Storage) {
	endpoint := func(t *testing.T, st ports.Storage, m domain.MerchantID, events ...string) domain.WebhookEndpoint {
		t.Helper()
		e, err := domain.NewWebhookEndpoint(m, "https://hooks.example/"+token(), events, now())
		if err != nil {
			t.Fatalf("new endpoint: %v", err)
		}
		if _, err := st.Endpoints().CreateEndpoint(t.Context(), m, e); err != nil {
			t.Fatalf("create endpoint: %v", err)
		}
		return e
	}
	message := func(typ string, at time.Time) domain.OutboundMessage {
		return domain.OutboundMessage{Type: typ, Payload: []byte(`{"type":"` + typ + `","n":"` + token() + `"}`), At: at}
	}
	canonEndpoint := func(e domain.WebhookEndpoint) domain.WebhookEndpoint {
		e.CreatedAt, e.DisabledAt = e.CreatedAt.UTC().Truncate(time.Microsecond), e.DisabledAt.UTC().Truncate(time.Microsecond)
		return e
	}

	t.Run("a rolled-back delivery attempt leaves no trace", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		e := endpoint(t, st, m, "*")
		msg := message(domain.OutboundTaskFailed, now())
		want := string(msg.Payload)
		_, err := st.Outbox().Enqueue(ctx, m, msg)
		is.NoErr(err)
		msg.Payload[0] = 'x' // the caller's buffer is not what is stored

		err = st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			d, err := tx.Outbox().ClaimDeliveries(ctx, now(), time.Minute, 10)
			if err != nil || len(d) != 1 {
				return fmt.Errorf("claim in the unit of work: %v, %v", d, err)
			}
			if err := tx.Outbox().FinishDelivery(ctx, d[0].ID, 1, domain.DeliveryResult{Status: domain.DeliveryFailed,
				StatusCode: 410, At: now(), DisableEndpoint: true}); err != nil {
				return err
			}
			return errors.New("roll back")
		})
		is.Equal(err.Error(), "roll back")
		list, err := st.Endpoints().ListEndpoints(ctx, m)
		is.NoErr(err)
		is.True(list[0].DisabledAt.IsZero()) // the rolled-back 410 disabled nothing
		d, err := st.Outbox().ClaimDeliveries(ctx, now(), time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(d), 1)        // the delivery is due again
		is.Equal(d[0].Attempts, 1) // its rolled-back attempt forgotten
		is.Equal(string(d[0].Payload), want)
		is.Equal(d[0].Secret, e.Secret)
	})

	t.Run("endpoints are per merchant", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		first := endpoint(t, st, a, "*")
		second := endpoint(t, st, a, domain.OutboundTaskFailed, domain.OutboundInvoiceRecovered)
		list, err := st.Endpoints().ListEndpoints(ctx, a)
		is.NoErr(err)
		is.Equal(len(list), 2)
		is.Equal(canonEndpoint(list[0]), canonEndpoint(first)) // whole, oldest first
		is.Equal(canonEndpoint(list[1]), canonEndpoint(second))
		list, err = st.Endpoints().ListEndpoints(ctx, b)
		is.NoErr(err)
		is.Equal(len(list), 0) // another merchant sees none

		is.True(errors.Is(st.Endpoints().DeleteEndpoint(ctx, b, first.ID), domain.ErrNotFound)) // nor deletes them
		exists, err := st.Endpoints().EndpointExists(ctx, first.ID)
		is.NoErr(err)
		is.True(exists) // which exist
		_, err = st.Endpoints().Deliveries(ctx, b, first.ID, domain.DeliveryFilter{Limit: 10})
		is.True(errors.Is(err, domain.ErrNotFound)) // nor reads their deliveries
		is.NoErr(st.Endpoints().DeleteEndpoint(ctx, a, first.ID))
		exists, err = st.Endpoints().EndpointExists(ctx, first.ID)
		is.NoErr(err)
		is.True(!exists) // deleted by its owner
		is.True(errors.Is(st.Endpoints().DeleteEndpoint(ctx, a, first.ID), domain.ErrNotFound))

		for range domain.MaxEndpointsPerShop - 1 {
			endpoint(t, st, b, "*")
		}
		e, err := domain.NewWebhookEndpoint(b, "https://hooks.example/one-too-many", []string{"*"}, now())
		is.NoErr(err)
		_, err = st.Endpoints().CreateEndpoint(ctx, b, e)
		is.NoErr(err) // up to the limit
		e, err = domain.NewWebhookEndpoint(b, "https://hooks.example/one-too-many", []string{"*"}, now())
		is.NoErr(err)
		_, err = st.Endpoints().CreateEndpoint(ctx, b, e)
		is.True(errors.Is(err, domain.ErrConflict)) // and no more
	})

	t.Run("an idempotency key creates one endpoint", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		keyed := func(m domain.MerchantID, key, url string, events ...string) domain.WebhookEndpoint {
			t.Helper()
			e, err := domain.NewWebhookEndpoint(m, url, events, now())
			is.NoErr(err)
			e.IdempotencyKey = key
			return e
		}
		key := "form-" + token()
		const workers = 8
		got := make([]domain.WebhookEndpoint, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for i := range workers { // the same request, at once, each with its own fresh endpoint
			wg.Go(func() {
				got[i], errs[i] = st.Endpoints().CreateEndpoint(ctx, a, keyed(a, key, "https://hooks.example/a", "*"))
			})
		}
		wg.Wait()
		for i := range workers {
			is.NoErr(errs[i])
			is.Equal(canonEndpoint(got[i]), canonEndpoint(got[0])) // every request gets the one endpoint, secret included
		}
		is.Equal(got[0].IdempotencyKey, key)
		is.Equal(len(got[0].Secret), 24)
		list, err := st.Endpoints().ListEndpoints(ctx, a)
		is.NoErr(err)
		is.Equal(len(list), 1) // created once
		is.Equal(list[0].ID, got[0].ID)

		_, err = st.Endpoints().CreateEndpoint(ctx, a, keyed(a, key, "https://hooks.example/other", "*"))
		is.True(errors.Is(err, domain.ErrKeyReused)) // the key with another URL
		is.True(errors.Is(err, domain.ErrConflict))
		_, err = st.Endpoints().CreateEndpoint(ctx, a, keyed(a, key, "https://hooks.example/a", domain.OutboundTaskFailed))
		is.True(errors.Is(err, domain.ErrKeyReused)) // or other events

		theirs, err := st.Endpoints().CreateEndpoint(ctx, b, keyed(b, key, "https://hooks.example/a", "*"))
		is.NoErr(err)
		is.True(theirs.ID != got[0].ID) // keys are each merchant's own
		for range 2 {
			_, err = st.Endpoints().CreateEndpoint(ctx, a, keyed(a, "", "https://hooks.example/a", "*"))
			is.NoErr(err)
		}
		list, err = st.Endpoints().ListEndpoints(ctx, a)
		is.NoErr(err)
		is.Equal(len(list), 3) // without a key, each request creates one
	})

	t.Run("a message goes to each subscribed endpoint, with its change", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		a, b := newMerchant(t, st), newMerchant(t, st)
		all := endpoint(t, st, a, "*")
		failures := endpoint(t, st, a, domain.OutboundTaskFailed)
		endpoint(t, st, b, "*")
		at := claimBase.Add(-time.Minute)

		// A rollback takes the message back with the change.
		task := newTask(a, domain.TypeNotifyChargeFailed, "", 0, now())
		err := st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			if _, err := tx.Tasks().Schedule(ctx, a, []domain.Task{task}); err != nil {
				return err
			}
			if _, err := tx.Outbox().Enqueue(ctx, a, message(domain.OutboundTaskSucceeded, at)); err != nil {
				return err
			}
			return errRollback
		})
		is.True(errors.Is(err, errRollback))
		claimed, err := st.Outbox().ClaimDeliveries(ctx, claimBase, time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 0) // no message without its change

		var n int
		msg := message(domain.OutboundTaskSucceeded, at)
		is.NoErr(st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			if _, err := tx.Tasks().Schedule(ctx, a, []domain.Task{task}); err != nil {
				return err
			}
			n, err = tx.Outbox().Enqueue(ctx, a, msg)
			return err
		}))
		is.Equal(n, 1) // one subscribed endpoint
		n, err = st.Outbox().Enqueue(ctx, a, message(domain.OutboundTaskFailed, at))
		is.NoErr(err)
		is.Equal(n, 2) // both subscribe to failures
		n, err = st.Outbox().Enqueue(ctx, newMerchant(t, st), message(domain.OutboundTaskFailed, at))
		is.NoErr(err)
		is.Equal(n, 0) // a merchant with no endpoint gets none

		claimed, err = st.Outbox().ClaimDeliveries(ctx, claimBase, time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 3)
		byEndpoint := map[domain.EndpointID]int{}
		for _, d := range claimed {
			byEndpoint[d.EndpointID]++
			is.Equal(d.MerchantID, a)
			is.Equal(d.Attempts, 1)                   // the first attempt
			is.True(len(d.Secret) > 0 && d.URL != "") // with where and how to send it
			if d.EventType == domain.OutboundTaskSucceeded {
				is.Equal(string(d.Payload), string(msg.Payload)) // the payload as enqueued
				is.Equal(d.EndpointID, all.ID)
				is.Equal(d.URL, all.URL)
				is.Equal(d.Secret, all.Secret)
			}
		}
		is.Equal(byEndpoint, map[domain.EndpointID]int{all.ID: 2, failures.ID: 1})
		again, err := st.Outbox().ClaimDeliveries(ctx, claimBase, time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(again), 0) // each is handed out once while its lease holds
	})

	t.Run("a task's outcome and its messages are stored together", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		endpoint(t, st, m, "*")
		task := newTask(m, domain.TypeNotifyChargeFailed, "", 0, now())
		task.RunAt = claimBase.Add(-time.Hour)
		schedule(t, st, m, task)
		claimed, err := st.Queue().ClaimDue(ctx, claimBase, time.Hour, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 1)
		res := domain.TaskResult{Status: domain.StatusSucceeded, At: now(),
			Messages: []domain.OutboundMessage{message(domain.OutboundTaskSucceeded, claimBase.Add(-time.Minute))}}
		err = st.Queue().Finish(ctx, m, task.ID, 99, res)
		is.True(errors.Is(err, domain.ErrConflict)) // a lost claim records nothing
		deliveries, err := st.Outbox().ClaimDeliveries(ctx, claimBase, time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(deliveries), 0) // and sends nothing
		is.NoErr(st.Queue().Finish(ctx, m, task.ID, claimed[0].Attempts, res))
		deliveries, err = st.Outbox().ClaimDeliveries(ctx, claimBase, time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(deliveries), 1) // the outcome's message, with it
		is.Equal(deliveries[0].EventType, domain.OutboundTaskSucceeded)
	})

	t.Run("attempts, retries, failure, and a 410", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		e := endpoint(t, st, m, "*")
		gone := endpoint(t, st, m, domain.OutboundTaskFailed)
		at := claimBase.Add(-time.Minute)
		_, err := st.Outbox().Enqueue(ctx, m, message(domain.OutboundTaskSucceeded, at))
		is.NoErr(err)
		claim := func(now time.Time) []domain.Delivery {
			t.Helper()
			got, err := st.Outbox().ClaimDeliveries(ctx, now, time.Minute, 10)
			is.NoErr(err)
			return got
		}
		d := claim(claimBase)
		is.Equal(len(d), 1)
		later := claimBase.Add(30 * time.Second)
		is.NoErr(st.Outbox().FinishDelivery(ctx, d[0].ID, 1, domain.DeliveryResult{Status: domain.DeliveryPending, StatusCode: 500, Error: "HTTP 500", NextAttemptAt: later, At: claimBase}))
		is.True(errors.Is(st.Outbox().FinishDelivery(ctx, d[0].ID, 1, domain.DeliveryResult{Status: domain.DeliveryDelivered, At: claimBase}), domain.ErrConflict)) // once per claim
		is.Equal(len(claim(later.Add(-time.Microsecond))), 0)                                                                                                       // not due before its retry
		d2 := claim(later)
		is.Equal(len(d2), 1)
		is.Equal(d2[0].ID, d[0].ID) // the same delivery, the same webhook-id
		is.Equal(d2[0].Attempts, 2)
		is.NoErr(st.Outbox().FinishDelivery(ctx, d2[0].ID, 2, domain.DeliveryResult{Status: domain.DeliveryDelivered, StatusCode: 204, At: later}))
		page, err := st.Endpoints().Deliveries(ctx, m, e.ID, domain.DeliveryFilter{Limit: 10})
		is.NoErr(err)
		is.Equal(len(page.Deliveries), 1)
		got := page.Deliveries[0]
		is.Equal(got.Status, domain.DeliveryDelivered) // delivered
		is.Equal(got.Attempts, 2)
		is.Equal(got.LastStatusCode, 204)
		is.True(got.DeliveredAt.Equal(later))
		is.Equal(len(got.Payload), 0) // lists leave the payload out

		// An expired lease hands the delivery to another worker.
		_, err = st.Outbox().Enqueue(ctx, m, message(domain.OutboundTaskFailed, at))
		is.NoErr(err)
		first := claim(claimBase)
		is.Equal(len(first), 2)
		var toGone, toE domain.Delivery
		for _, d := range first {
			if d.EndpointID == gone.ID {
				toGone = d
			} else {
				toE = d
			}
		}
		retaken := claim(claimBase.Add(time.Minute + time.Second))
		is.Equal(len(retaken), 2)                                                                                                                                  // both leases expired
		is.True(errors.Is(st.Outbox().FinishDelivery(ctx, toE.ID, 1, domain.DeliveryResult{Status: domain.DeliveryDelivered, At: claimBase}), domain.ErrConflict)) // the old claim lost
		is.NoErr(st.Outbox().FinishDelivery(ctx, toE.ID, 2, domain.DeliveryResult{Status: domain.DeliveryFailed, StatusCode: 400, Error: "HTTP 400", At: claimBase}))
		is.NoErr(st.Outbox().FinishDelivery(ctx, toGone.ID, 2, domain.DeliveryResult{Status: domain.DeliveryFailed, StatusCode: 410, Error: "HTTP 410", At: claimBase, DisableEndpoint: true}))
		list, err := st.Endpoints().ListEndpoints(ctx, m)
		is.NoErr(err)
		for _, ep := range list {
			is.Equal(!ep.DisabledAt.IsZero(), ep.ID == gone.ID) // a 410 disables its endpoint only
		}
		n, err := st.Outbox().Enqueue(ctx, m, message(domain.OutboundTaskFailed, at))
		is.NoErr(err)
		is.Equal(n, 1) // a disabled endpoint gets nothing new
		page, err = st.Endpoints().Deliveries(ctx, m, e.ID, domain.DeliveryFilter{Limit: 10})
		is.NoErr(err)
		is.Equal(len(page.Deliveries), 3)
		is.Equal(page.Deliveries[1].Status, domain.DeliveryFailed)
		is.Equal(page.Deliveries[1].LastError, "HTTP 400")
	})

	t.Run("deliveries page newest first", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		e := endpoint(t, st, m, "*")
		t0 := now()
		for i := range 7 {
			_, err := st.Outbox().Enqueue(ctx, m, message(domain.OutboundTaskSucceeded, t0.Add(time.Duration(i/2)*time.Second)))
			is.NoErr(err)
		}
		var seen []domain.DeliveryID
		f := domain.DeliveryFilter{Limit: 3}
		for range 10 {
			page, err := st.Endpoints().Deliveries(ctx, m, e.ID, f)
			is.NoErr(err)
			for _, d := range page.Deliveries {
				seen = append(seen, d.ID)
			}
			if page.Next == nil {
				break
			}
			f.After = page.Next
		}
		is.Equal(len(seen), 7)
		is.Equal(len(slices.Compact(slices.Sorted(slices.Values(seen)))), 7) // each once
	})

	t.Run("concurrent claimers never share a delivery", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		st := newStorage(t)
		m := newMerchant(t, st)
		endpoint(t, st, m, "*")
		const total = 40
		for range total {
			_, err := st.Outbox().Enqueue(ctx, m, message(domain.OutboundTaskSucceeded, claimBase.Add(-time.Minute)))
			is.NoErr(err)
		}
		var mu sync.Mutex
		got := map[domain.DeliveryID]int{}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				for {
					d, err := st.Outbox().ClaimDeliveries(ctx, claimBase, time.Hour, 3)
					if err != nil {
						errs <- err
						return
					}
					if len(d) == 0 {
						return
					}
					mu.Lock()
					for _, x := range d {
						got[x.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			is.NoErr(err)
		}
		is.Equal(len(got), total) // every delivery claimed
		for _, n := range got {
			is.Equal(n, 1) // by one claimer only
		}
	})
}
