package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// endpoint is a stored webhook endpoint and its deliveries.
type endpoint struct {
	domain.WebhookEndpoint
	deliveries []*delivery // by age: the delivery list's order, reversed
}

// delivery is a stored delivery and the end of its claim's lease, zero
// while no claim holds. Its URL and Secret stay empty: a claim takes them
// from the endpoint.
type delivery struct {
	domain.Delivery
	lease time.Time
}

// deliveryByAge orders deliveries by CreatedAt, then id.
func deliveryByAge(a, b *delivery) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(string(a.ID), string(b.ID)))
}

// addEndpoint and dropEndpoint store and remove an endpoint with its
// deliveries; each undoes the other.

func (s *Store) addEndpoint(ten *tenant, ep *endpoint) {
	s.endpoints[ep.ID] = ep
	ten.hooks = append(ten.hooks, ep)
	for _, d := range ep.deliveries {
		s.deliveries[d.ID] = d
		s.putDelivery(d, *d)
	}
}

func (s *Store) dropEndpoint(ten *tenant, ep *endpoint) {
	for _, d := range ep.deliveries {
		delete(s.deliveries, d.ID)
		delete(s.outbox, d)
	}
	ten.hooks = slices.DeleteFunc(ten.hooks, func(x *endpoint) bool { return x == ep })
	delete(s.endpoints, ep.ID)
}

// setDelivery stores next in place of d, logging how to restore it.
func (u *unit) setDelivery(d *delivery, next delivery) {
	old := *d
	u.s.putDelivery(d, next)
	u.onUndo(func() { u.s.putDelivery(d, old) })
}

// putDelivery stores next in place of d, in the outbox while it is pending.
func (s *Store) putDelivery(d *delivery, next delivery) {
	*d = next
	put(s.outbox, d, struct{}{}, d.Status == domain.DeliveryPending)
}

// endpoint returns the tenant's endpoint with this id, in any spelling.
// Ids are unique across merchants, so one map holds every endpoint; the
// merchant must match.
func (s *Store) endpoint(ten *tenant, id domain.EndpointID) (*endpoint, error) {
	if canon, err := domain.ParseUUID(string(id)); err == nil {
		if ep := s.endpoints[domain.EndpointID(canon)]; ep != nil && ep.MerchantID == ten.id {
			return ep, nil
		}
	}
	return nil, fmt.Errorf("endpoint %s: %w", id, domain.ErrNotFound)
}

// detachedEndpoint returns e with slices of its own: no caller shares
// memory with the store.
func detachedEndpoint(e domain.WebhookEndpoint) domain.WebhookEndpoint {
	e.Events, e.Secret = slices.Clone(e.Events), slices.Clone(e.Secret)
	return e
}

func (c scope) CreateEndpoint(ctx context.Context, merchant domain.MerchantID, e domain.WebhookEndpoint) (domain.WebhookEndpoint, error) {
	id, err := domain.ParseUUID(string(e.ID))
	switch {
	case e.MerchantID != merchant:
		return domain.WebhookEndpoint{}, fmt.Errorf("create endpoint: %w: it belongs to merchant %q, not %q", domain.ErrInvalid, e.MerchantID, merchant)
	case err != nil:
		return domain.WebhookEndpoint{}, fmt.Errorf("create endpoint: %w", err)
	case !domain.StorableText(append([]string{e.URL, e.IdempotencyKey}, e.Events...)...):
		return domain.WebhookEndpoint{}, fmt.Errorf("create endpoint %s: %w: text with a NUL character", id, domain.ErrInvalid)
	}
	e = detachedEndpoint(e)
	e.ID, e.CreatedAt, e.DisabledAt = domain.EndpointID(id), norm(e.CreatedAt), norm(e.DisabledAt)
	var stored domain.WebhookEndpoint
	err = c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		if e.IdempotencyKey != "" {
			for _, ep := range ten.hooks {
				if ep.IdempotencyKey != e.IdempotencyKey {
					continue
				}
				if !ep.SameRequest(e) {
					return fmt.Errorf("create endpoint: %w", domain.ErrKeyReused)
				}
				stored = detachedEndpoint(ep.WebhookEndpoint)
				return nil
			}
		}
		switch {
		case len(ten.hooks) >= domain.MaxEndpointsPerShop:
			return fmt.Errorf("create endpoint: %w: the merchant has %d endpoints already", domain.ErrConflict, len(ten.hooks))
		case u.s.endpoints[e.ID] != nil:
			return fmt.Errorf("create endpoint %s: %w: id already used", e.ID, domain.ErrConflict)
		}
		e.MerchantID = ten.id
		ep := &endpoint{WebhookEndpoint: e}
		u.s.addEndpoint(ten, ep)
		u.onUndo(func() { u.s.dropEndpoint(ten, ep) })
		stored = detachedEndpoint(e)
		return nil
	})
	return stored, err
}

func (c scope) ListEndpoints(ctx context.Context, merchant domain.MerchantID) ([]domain.WebhookEndpoint, error) {
	var out []domain.WebhookEndpoint
	err := c.doFor(ctx, merchant, func(_ *unit, ten *tenant) error {
		out = make([]domain.WebhookEndpoint, 0, len(ten.hooks))
		for _, ep := range ten.hooks {
			out = append(out, detachedEndpoint(ep.WebhookEndpoint))
		}
		return nil
	})
	slices.SortFunc(out, func(a, b domain.WebhookEndpoint) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(string(a.ID), string(b.ID)))
	})
	return out, err
}

func (c scope) DeleteEndpoint(ctx context.Context, merchant domain.MerchantID, id domain.EndpointID) error {
	return c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		ep, err := u.s.endpoint(ten, id)
		if err != nil {
			return err
		}
		u.s.dropEndpoint(ten, ep)
		u.onUndo(func() { u.s.addEndpoint(ten, ep) })
		return nil
	})
}

func (c scope) EndpointExists(ctx context.Context, id domain.EndpointID) (bool, error) {
	var ok bool
	err := c.do(ctx, func(u *unit) error {
		canon, err := domain.ParseUUID(string(id))
		ok = err == nil && u.s.endpoints[domain.EndpointID(canon)] != nil
		return nil
	})
	return ok, err
}

// Deliveries walks the endpoint's deliveries back from the cursor, found
// by binary search.
func (c scope) Deliveries(ctx context.Context, merchant domain.MerchantID, id domain.EndpointID, f domain.DeliveryFilter) (domain.DeliveryPage, error) {
	var after *delivery
	if f.After != nil {
		after = &delivery{Delivery: domain.Delivery{ID: f.After.ID, CreatedAt: norm(f.After.CreatedAt)}}
	}
	limit := min(cmp.Or(max(f.Limit, 0), domain.DefaultPageSize), domain.MaxPageSize)
	var page domain.DeliveryPage
	err := c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		ep, err := u.s.endpoint(ten, id)
		if err != nil {
			return err
		}
		i := len(ep.deliveries)
		if after != nil {
			i, _ = slices.BinarySearchFunc(ep.deliveries, after, deliveryByAge)
		}
		page.Deliveries = make([]domain.Delivery, 0, min(limit, i))
		for i--; i >= 0 && len(page.Deliveries) < limit; i-- {
			d := ep.deliveries[i].Delivery
			d.Payload = nil // lists leave it out
			page.Deliveries = append(page.Deliveries, d)
		}
		if i >= 0 { // a full page, and more behind it
			last := page.Deliveries[limit-1]
			page.Next = &domain.DeliveryCursor{CreatedAt: last.CreatedAt, ID: last.ID}
		}
		return nil
	})
	return page, err
}

// checkMessages is ErrInvalid when a message's type holds a NUL character.
func checkMessages(msgs ...domain.OutboundMessage) error {
	for _, m := range msgs {
		if !domain.StorableText(m.Type) {
			return fmt.Errorf("outbound message: %w: a type with a NUL character", domain.ErrInvalid)
		}
	}
	return nil
}

func (c scope) Enqueue(ctx context.Context, merchant domain.MerchantID, msg domain.OutboundMessage) (int, error) {
	if err := checkMessages(msg); err != nil {
		return 0, err
	}
	n := 0
	err := c.doFor(ctx, merchant, func(u *unit, ten *tenant) error {
		n = u.enqueue(ten, msg)
		return nil
	})
	return n, err
}

// enqueue stores msg as a delivery to each of the tenant's endpoints
// subscribed to it, due at msg.At and created now, and returns how many.
func (u *unit) enqueue(ten *tenant, msg domain.OutboundMessage) int {
	payload := slices.Clone(msg.Payload) // one copy, which its deliveries share: none changes it
	at, now := norm(msg.At), norm(u.s.clock.Now())
	n := 0
	for _, ep := range ten.hooks {
		if !ep.Subscribed(msg.Type) {
			continue
		}
		d := &delivery{Delivery: domain.Delivery{ID: domain.NewDeliveryID(), MerchantID: ten.id, EndpointID: ep.ID,
			EventType: msg.Type, Payload: payload, Status: domain.DeliveryPending, NextAttemptAt: at, CreatedAt: now}}
		u.s.addDelivery(ep, d)
		u.onUndo(func() { u.s.dropDelivery(ep, d) })
		n++
	}
	return n
}

func (s *Store) addDelivery(ep *endpoint, d *delivery) {
	i, _ := slices.BinarySearchFunc(ep.deliveries, d, deliveryByAge)
	ep.deliveries = slices.Insert(ep.deliveries, i, d)
	s.deliveries[d.ID] = d
	s.putDelivery(d, *d)
}

func (s *Store) dropDelivery(ep *endpoint, d *delivery) {
	delete(s.outbox, d)
	delete(s.deliveries, d.ID)
	i, _ := slices.BinarySearchFunc(ep.deliveries, d, deliveryByAge)
	ep.deliveries = slices.Delete(ep.deliveries, i, i+1)
}

// dueSince reports whether d may be claimed at now, and since when: a
// delivery no claim holds once it is time for its next attempt, one whose
// claim's lease expired before now since then.
func (d *delivery) dueSince(now time.Time) (time.Time, bool) {
	if d.lease.IsZero() {
		return d.NextAttemptAt, !d.NextAttemptAt.After(now)
	}
	return d.lease, d.lease.Before(now)
}

// ClaimDeliveries hands out no delivery twice: the store's lock
// serialises claims. The longest due go first.
func (c scope) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Delivery, error) {
	if limit < 1 {
		return []domain.Delivery{}, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim deliveries: %w: lease must be positive", domain.ErrInvalid)
	}
	now = norm(now)
	claimed := []domain.Delivery{}
	err := c.do(ctx, func(u *unit) error {
		s := u.s
		var due []*delivery
		for d := range s.outbox {
			if _, ok := d.dueSince(now); ok && s.endpoints[d.EndpointID].DisabledAt.IsZero() {
				due = append(due, d)
			}
		}
		slices.SortFunc(due, func(a, b *delivery) int {
			sa, _ := a.dueSince(now)
			sb, _ := b.dueSince(now)
			return cmp.Or(sa.Compare(sb), strings.Compare(string(a.ID), string(b.ID)))
		})
		for _, d := range due[:min(limit, len(due))] {
			next := *d
			next.Attempts, next.lease = next.Attempts+1, norm(now.Add(lease))
			u.setDelivery(d, next)
			out, ep := next.Delivery, s.endpoints[d.EndpointID]
			out.Payload, out.URL, out.Secret = slices.Clone(out.Payload), ep.URL, slices.Clone(ep.Secret)
			claimed = append(claimed, out)
		}
		return nil
	})
	return claimed, err
}

// FinishDelivery changes nothing unless the claim of this attempt still
// holds: the delivery is pending, claimed, and no later claim took it
// over. A delivery deleted with its endpoint has no claim either.
func (c scope) FinishDelivery(ctx context.Context, id domain.DeliveryID, attempt int, res domain.DeliveryResult) error {
	if !slices.Contains([]domain.DeliveryStatus{domain.DeliveryPending, domain.DeliveryDelivered, domain.DeliveryFailed}, res.Status) ||
		!domain.StorableText(res.Error) {
		return fmt.Errorf("finish delivery %s: %w: an attempt cannot end %q, nor with a NUL character in its error", id, domain.ErrInvalid, res.Status)
	}
	return c.do(ctx, func(u *unit) error {
		d := u.s.deliveries[id]
		if d == nil || d.lease.IsZero() || d.Attempts != attempt {
			return fmt.Errorf("finish delivery %s: %w: the claim of attempt %d no longer holds", id, domain.ErrConflict, attempt)
		}
		next := *d
		next.Status, next.LastStatusCode, next.LastError, next.lease = res.Status, res.StatusCode, res.Error, time.Time{}
		if !res.NextAttemptAt.IsZero() { // a zero time leaves the delivery's as it is
			next.NextAttemptAt = norm(res.NextAttemptAt)
		}
		if res.Status == domain.DeliveryDelivered {
			next.DeliveredAt = norm(res.At)
		}
		u.setDelivery(d, next)
		if ep := u.s.endpoints[d.EndpointID]; res.DisableEndpoint && ep.DisabledAt.IsZero() {
			ep.DisabledAt = norm(cmp.Or(res.At, u.s.clock.Now()))
			u.onUndo(func() { ep.DisabledAt = time.Time{} })
		}
		return nil
	})
}
