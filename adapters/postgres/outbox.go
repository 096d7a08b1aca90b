package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// endpoints are the merchants' rows of webhook_endpoints, and the
// deliveries listed from webhook_deliveries.
type endpoints struct {
	db querier
	// store runs CreateEndpoint's transaction.
	store *Store
}

// endpointColumns is what every endpoint query returns, in the order
// scanEndpoint reads: the events as a JSON array.
const endpointColumns = `webhook_endpoints.id, webhook_endpoints.merchant_id, webhook_endpoints.url,
	array_to_json(webhook_endpoints.events)::text, webhook_endpoints.secret, webhook_endpoints.created_at,
	webhook_endpoints.disabled_at, webhook_endpoints.idempotency_key`

func scanEndpoint(rows *sql.Rows) (domain.WebhookEndpoint, error) {
	var id, merchant, url, events, key string
	var secret []byte
	var created time.Time
	var disabled *time.Time
	if err := rows.Scan(&id, &merchant, &url, &events, &secret, &created, &disabled, &key); err != nil {
		return domain.WebhookEndpoint{}, err
	}
	e := domain.WebhookEndpoint{ID: domain.EndpointID(id), MerchantID: domain.MerchantID(merchant), URL: url,
		Secret: secret, CreatedAt: created.UTC(), DisabledAt: timeOf(disabled), IdempotencyKey: key}
	if err := json.Unmarshal([]byte(events), &e.Events); err != nil {
		return domain.WebhookEndpoint{}, fmt.Errorf("events of endpoint %s: %w", id, err)
	}
	return e, nil
}

// endpointIDParam reports whether id can name a row at all; see
// taskIDParam.
func endpointIDParam(id domain.EndpointID) (string, bool) {
	s, err := domain.ParseUUID(string(id))
	return s, err == nil
}

// Statements of CreateEndpoint. lockEndpointsSQL takes the transaction
// advisory lock of the merchant's endpoints ($1), so that concurrent
// creations count one after the other. The events go as a JSON array of
// text, which any query mode and bun's formatter pass as it is, and become
// a text[] in their order.
const (
	lockEndpointsSQL  = `SELECT pg_advisory_xact_lock(hashtext('recoup webhook endpoints'), hashtext($1::text))`
	createEndpointSQL = `
		INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at, disabled_at, idempotency_key)
		SELECT $1::uuid, $2::uuid, $3::text,
			ARRAY(SELECT ev FROM jsonb_array_elements_text($4::jsonb) WITH ORDINALITY AS e(ev, n) ORDER BY n),
			$5::bytea, $6::timestamptz, $7::timestamptz, $9::text
		WHERE (SELECT count(*) FROM webhook_endpoints WHERE merchant_id = $2::uuid) < $8::int
		RETURNING id`
	// endpointByKeySQL finds the merchant's ($1) endpoint created with the
	// idempotency key $2 (webhook_endpoints_idempotency_key).
	endpointByKeySQL = `SELECT ` + endpointColumns + ` FROM webhook_endpoints
		WHERE merchant_id = $1 AND idempotency_key = $2 AND idempotency_key <> ''`
)

// CreateEndpoint counts the merchant's endpoints and inserts the new one
// in a transaction, under the merchant's advisory lock: the count is read
// after the lock, so the limit holds across processes. The primary key
// turns away an id already used.
func (r endpoints) CreateEndpoint(ctx context.Context, merchant domain.MerchantID, e domain.WebhookEndpoint) (domain.WebhookEndpoint, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.WebhookEndpoint{}, fmt.Errorf("create endpoint: %w", err)
	}
	id, err := domain.ParseUUID(string(e.ID))
	switch {
	case e.MerchantID != merchant:
		return domain.WebhookEndpoint{}, fmt.Errorf("create endpoint: %w: it belongs to merchant %q, not %q", domain.ErrInvalid, e.MerchantID, merchant)
	case err != nil:
		return domain.WebhookEndpoint{}, fmt.Errorf("create endpoint: %w", err)
	case !domain.StorableText(append([]string{e.URL, e.IdempotencyKey}, e.Events...)...):
		return domain.WebhookEndpoint{}, fmt.Errorf("create endpoint %s: %w: text with a NUL character", id, domain.ErrInvalid)
	}
	events, err := json.Marshal(e.Events)
	if err != nil {
		return domain.WebhookEndpoint{}, fmt.Errorf("create endpoint %s: %w", id, err)
	}
	secret := e.Secret
	if secret == nil {
		secret = []byte{} // NULL otherwise
	}
	stored := e
	stored.ID, stored.CreatedAt, stored.DisabledAt = domain.EndpointID(id), e.CreatedAt.UTC(), e.DisabledAt.UTC()
	err = r.store.inTx(ctx, func(ctx context.Context, db querier) error {
		if _, err := db.ExecContext(ctx, lockEndpointsSQL, mid); err != nil {
			return interpretError("create endpoint: lock the merchant's endpoints", err)
		}
		if e.IdempotencyKey != "" {
			// Under the lock: a concurrent request with the same key
			// waits here and then finds this one's endpoint.
			same, err := queryAll(ctx, db, scanEndpoint, endpointByKeySQL, mid, e.IdempotencyKey)
			if err != nil {
				return interpretError("create endpoint: find its idempotency key", err)
			}
			if len(same) > 0 {
				if !same[0].SameRequest(e) {
					return fmt.Errorf("create endpoint: %w", domain.ErrKeyReused)
				}
				stored = same[0]
				return nil
			}
		}
		var got string
		err := db.QueryRowContext(ctx, createEndpointSQL, id, mid, e.URL, string(events), secret, e.CreatedAt,
			nullTime(e.DisabledAt), domain.MaxEndpointsPerShop, e.IdempotencyKey).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("create endpoint: %w: the merchant has %d endpoints already", domain.ErrConflict, domain.MaxEndpointsPerShop)
		}
		return interpretError("create endpoint "+id, err)
	})
	if err != nil {
		return domain.WebhookEndpoint{}, err
	}
	return stored, nil
}

// ListEndpoints reads the merchant's endpoints, oldest first
// (webhook_endpoints_merchant_created).
func (r endpoints) ListEndpoints(ctx context.Context, merchant domain.MerchantID) ([]domain.WebhookEndpoint, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	list, err := queryAll(ctx, r.db, scanEndpoint, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE merchant_id = $1 ORDER BY created_at, id`, mid)
	if err != nil {
		return nil, interpretError("list endpoints", err)
	}
	if list == nil {
		list = []domain.WebhookEndpoint{}
	}
	return list, nil
}

// DeleteEndpoint deletes the merchant's endpoint; its deliveries go with
// it (ON DELETE CASCADE). An Enqueue or Finish that holds the endpoint
// (FOR SHARE) is waited for, so no delivery is left without its endpoint.
func (r endpoints) DeleteEndpoint(ctx context.Context, merchant domain.MerchantID, id domain.EndpointID) error {
	mid, err := merchantParam(merchant)
	if err != nil {
		return fmt.Errorf("delete endpoint: %w", err)
	}
	eid, ok := endpointIDParam(id)
	if !ok {
		return fmt.Errorf("endpoint %s: %w", id, domain.ErrNotFound)
	}
	n, err := rowsAffected(ctx, r.db, `DELETE FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2`, mid, eid)
	if err != nil {
		return interpretError("delete endpoint "+string(id), err)
	}
	if n == 0 {
		return fmt.Errorf("endpoint %s: %w", id, domain.ErrNotFound)
	}
	return nil
}

// EndpointExists is the one unscoped read of endpoints.
func (r endpoints) EndpointExists(ctx context.Context, id domain.EndpointID) (bool, error) {
	eid, ok := endpointIDParam(id)
	if !ok {
		return false, nil
	}
	var exists bool
	if err := r.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM webhook_endpoints WHERE id = $1)`, eid).Scan(&exists); err != nil {
		return false, interpretError("look up endpoint "+string(id), err)
	}
	return exists, nil
}

// deliveryColumns is what every delivery query returns, in the order
// scanDelivery reads; the payload, URL and secret come after it where a
// query needs them.
const deliveryColumns = `d.id, d.merchant_id, d.endpoint_id, d.event_type, d.status, d.attempts,
	d.last_status_code, d.last_error, d.next_attempt_at, d.created_at, d.delivered_at`

// scanDelivery reads deliveryColumns, then any further destinations.
func scanDelivery(rows *sql.Rows, more ...any) (domain.Delivery, error) {
	var id, merchant, endpoint, typ, status string
	var d domain.Delivery
	var delivered *time.Time
	if err := rows.Scan(append([]any{&id, &merchant, &endpoint, &typ, &status, &d.Attempts,
		&d.LastStatusCode, &d.LastError, &d.NextAttemptAt, &d.CreatedAt, &delivered}, more...)...); err != nil {
		return domain.Delivery{}, err
	}
	d.ID, d.MerchantID, d.EndpointID = deliveryPrefix+domain.DeliveryID(id), domain.MerchantID(merchant), domain.EndpointID(endpoint)
	d.EventType, d.Status = typ, domain.DeliveryStatus(status)
	d.NextAttemptAt, d.CreatedAt, d.DeliveredAt = d.NextAttemptAt.UTC(), d.CreatedAt.UTC(), timeOf(delivered)
	return d, nil
}

// deliveryPrefix starts every delivery id; the column keeps the UUID
// after it.
const deliveryPrefix = "msg_"

// deliveryIDParam returns the UUID of a delivery id, and whether it is one.
func deliveryIDParam(id domain.DeliveryID) (string, bool) {
	rest, ok := strings.CutPrefix(string(id), deliveryPrefix)
	if !ok {
		return "", false
	}
	s, err := domain.ParseUUID(rest)
	return s, err == nil
}

// listDeliveriesSQL is the statement of a page of an endpoint's
// deliveries, from the start or after a cursor: the keyset and order of
// webhook_deliveries_endpoint_created.
func listDeliveriesSQL(afterCursor bool) string {
	cursor := ""
	if afterCursor {
		cursor = " AND (d.created_at, d.id) < ($4::timestamptz, $5::uuid)"
	}
	return `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d
		WHERE d.endpoint_id = $2 AND d.merchant_id = $1` + cursor + `
		ORDER BY d.created_at DESC, d.id DESC
		LIMIT $3`
}

// Deliveries reads one page by keyset, leaving the payloads out. Only an
// empty page asks whether the merchant has the endpoint at all: a
// delivery is deleted with its endpoint.
func (r endpoints) Deliveries(ctx context.Context, merchant domain.MerchantID, id domain.EndpointID, f domain.DeliveryFilter) (domain.DeliveryPage, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return domain.DeliveryPage{}, fmt.Errorf("list deliveries: %w", err)
	}
	eid, ok := endpointIDParam(id)
	if !ok {
		return domain.DeliveryPage{}, fmt.Errorf("endpoint %s: %w", id, domain.ErrNotFound)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = domain.DefaultPageSize
	}
	limit = min(limit, domain.MaxPageSize)
	args := []any{mid, eid, limit + 1}
	if f.After != nil {
		after, ok := deliveryIDParam(f.After.ID)
		if !ok {
			return domain.DeliveryPage{}, fmt.Errorf("list deliveries: %w: bad cursor", domain.ErrInvalid)
		}
		args = append(args, f.After.CreatedAt, after)
	}
	list, err := queryAll(ctx, r.db, func(rows *sql.Rows) (domain.Delivery, error) { return scanDelivery(rows) },
		listDeliveriesSQL(f.After != nil), args...)
	if err != nil {
		return domain.DeliveryPage{}, interpretError("list deliveries of endpoint "+string(id), err)
	}
	if len(list) == 0 {
		var exists bool
		err := r.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2)`,
			mid, eid).Scan(&exists)
		if err != nil {
			return domain.DeliveryPage{}, interpretError("look up endpoint "+string(id), err)
		}
		if !exists {
			return domain.DeliveryPage{}, fmt.Errorf("endpoint %s: %w", id, domain.ErrNotFound)
		}
		return domain.DeliveryPage{Deliveries: []domain.Delivery{}}, nil
	}
	page := domain.DeliveryPage{Deliveries: list}
	if len(list) > limit {
		page.Deliveries = list[:limit]
		last := page.Deliveries[limit-1]
		page.Next = &domain.DeliveryCursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	return page, nil
}

// outbox enqueues messages as rows of webhook_deliveries, on the pool or
// in a unit of work, and hands them out to delivery workers.
type outbox struct {
	db querier
	// now is the store's clock: a delivery is created at its now.
	now func() time.Time
}

// checkMessages is ErrInvalid when a message's type holds a NUL
// character.
func checkMessages(msgs ...domain.OutboundMessage) error {
	for _, m := range msgs {
		if !domain.StorableText(m.Type) {
			return fmt.Errorf("outbound message: %w: a type with a NUL character", domain.ErrInvalid)
		}
	}
	return nil
}

// enqueueSQL is the statement that stores k messages of the merchant ($1)
// as deliveries to its subscribed endpoints, created at $created (the
// store's now); message i has three parameters from $first+3i: its type,
// payload and At. gate, when set, is another data-modifying statement
// whose parameters come before: the messages are stored only if it
// changed a row, and the statement returns how many it changed (0 or 1);
// without one, it returns how many deliveries it stored.
//
// The endpoints are read FOR SHARE: a concurrent DeleteEndpoint or a 410
// that disables one waits for the transaction, and one that committed
// first is seen (READ COMMITTED reads a locked row again at its latest
// version), so no delivery is stored for a deleted or disabled endpoint.
// The statement's text depends only on its arguments, so a connection
// prepares it once.
func enqueueSQL(k int, gate string, created, first int) string {
	var b strings.Builder
	b.WriteString("WITH ")
	gated := ""
	if gate != "" {
		b.WriteString("gate AS (" + gate + "\n\tRETURNING 1\n), ")
		gated = " AND EXISTS (SELECT FROM gate)"
	}
	p := func(i, k int) string { return "$" + strconv.Itoa(first+3*i+k) }
	types := make([]string, k)
	for i := range k {
		types[i] = p(i, 0) + "::text"
	}
	fmt.Fprintf(&b, `eps AS (
		SELECT id, events FROM webhook_endpoints
		WHERE merchant_id = $1::uuid AND disabled_at IS NULL AND events && ARRAY['*', %s]%s
		FOR SHARE
	)`, strings.Join(types, ", "), gated)
	for i := range k {
		fmt.Fprintf(&b, `, m%d AS (
		INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_type, payload, status, next_attempt_at, created_at)
		SELECT gen_random_uuid(), $1::uuid, eps.id, %s::text, %s::bytea, 'pending', %s::timestamptz, $%d::timestamptz
		FROM eps WHERE %s::text = ANY (eps.events) OR '*' = ANY (eps.events)
		RETURNING 1
	)`, i, p(i, 0), p(i, 1), p(i, 2), created, p(i, 0))
	}
	if gate != "" {
		b.WriteString("\n\tSELECT count(*) FROM gate")
		return b.String()
	}
	b.WriteString("\n\tSELECT 0")
	for i := range k {
		fmt.Fprintf(&b, " + (SELECT count(*) FROM m%d)", i)
	}
	return b.String()
}

// enqueueOneSQL is Enqueue's statement: $1 the merchant, $2 the store's
// now, $3 to $5 the message.
var enqueueOneSQL = enqueueSQL(1, "", 2, 3)

// messageArgs appends the parameters of msgs to args.
func messageArgs(args []any, msgs []domain.OutboundMessage) []any {
	for _, m := range msgs {
		payload := m.Payload
		if payload == nil {
			payload = []byte{} // NULL otherwise
		}
		args = append(args, m.Type, payload, m.At)
	}
	return args
}

// Enqueue stores the message's deliveries in one statement (enqueueSQL).
func (o outbox) Enqueue(ctx context.Context, merchant domain.MerchantID, msg domain.OutboundMessage) (int, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return 0, fmt.Errorf("enqueue message: %w", err)
	}
	if err := checkMessages(msg); err != nil {
		return 0, err
	}
	var n int
	args := messageArgs([]any{mid, o.now()}, []domain.OutboundMessage{msg})
	if err := o.db.QueryRowContext(ctx, enqueueOneSQL, args...).Scan(&n); err != nil {
		return 0, interpretError("enqueue "+msg.Type+" message", err)
	}
	return n, nil
}

// claimDeliveriesSQL is ClaimDeliveries' statement: $1 is now, $2 the
// limit, $3 the end of the lease. Like the task claim (claimDueSQL), it
// reads each kind of due delivery in the order of its partial index
// (webhook_deliveries_in_flight, webhook_deliveries_waiting), skipping
// rows another claim holds, and stops after limit rows. The endpoint's
// URL and secret come with each; one disabled meanwhile gets nothing.
const claimDeliveriesSQL = `
	WITH expired AS (
		SELECT id FROM webhook_deliveries
		WHERE status = 'pending' AND lease_until IS NOT NULL AND NOT endpoint_disabled AND lease_until < $1
		ORDER BY lease_until
		LIMIT $2
		FOR UPDATE SKIP LOCKED
	), waiting AS (
		SELECT id FROM webhook_deliveries
		WHERE status = 'pending' AND lease_until IS NULL AND NOT endpoint_disabled AND next_attempt_at <= $1
		ORDER BY next_attempt_at
		LIMIT $2
		FOR UPDATE SKIP LOCKED
	), due AS (
		SELECT id FROM expired
		UNION ALL
		SELECT id FROM waiting
		LIMIT $2
	)
	UPDATE webhook_deliveries AS d SET attempts = d.attempts + 1, lease_until = $3
	FROM due, webhook_endpoints AS e
	WHERE d.id = due.id AND e.id = d.endpoint_id AND e.disabled_at IS NULL
	RETURNING ` + deliveryColumns + `, d.payload, e.url, e.secret`

// ClaimDeliveries locks and leases up to limit due deliveries in one
// statement: no delivery goes to two workers, on any number of processes.
func (o outbox) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Delivery, error) {
	if limit < 1 {
		return []domain.Delivery{}, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim deliveries: %w: lease must be positive", domain.ErrInvalid)
	}
	claimed, err := queryAll(ctx, o.db, func(rows *sql.Rows) (domain.Delivery, error) {
		var payload, secret []byte
		var url string
		d, err := scanDelivery(rows, &payload, &url, &secret)
		d.Payload, d.URL, d.Secret = payload, url, secret
		return d, err
	}, claimDeliveriesSQL, now, limit, now.Add(lease))
	if err != nil {
		return nil, interpretError("claim deliveries", err)
	}
	if claimed == nil {
		claimed = []domain.Delivery{}
	}
	return claimed, nil
}

// finishDeliverySQL is FinishDelivery's statement: $1 the delivery, $2
// the attempt, $3 to $5 the status, code and error, $6 the next attempt
// (NULL: as it is), $7 when it was delivered (NULL: not), $8 whether to
// disable the endpoint, $9 when.
//
// The delivery changes only while the claim of the attempt holds. A 410
// disables its endpoint and marks the endpoint's other pending deliveries
// (endpoint_disabled), which takes them out of the claim's indexes; rows
// another statement holds at that moment are skipped rather than waited
// for, as two 410s of one endpoint would otherwise wait for each other's
// delivery: the claim leaves those out by the endpoint anyway, and their
// own finish marks them.
const finishDeliverySQL = `
	WITH d AS (
		UPDATE webhook_deliveries AS d
		SET status = $3, last_status_code = $4, last_error = $5,
			next_attempt_at = COALESCE($6::timestamptz, d.next_attempt_at),
			delivered_at = COALESCE($7::timestamptz, d.delivered_at), lease_until = NULL,
			endpoint_disabled = d.endpoint_disabled OR $8::boolean OR EXISTS (
				SELECT FROM webhook_endpoints AS e WHERE e.id = d.endpoint_id AND e.disabled_at IS NOT NULL)
		WHERE d.id = $1 AND d.attempts = $2 AND d.status = 'pending' AND d.lease_until IS NOT NULL
		RETURNING d.id, d.endpoint_id
	), e AS (
		UPDATE webhook_endpoints AS e SET disabled_at = $9::timestamptz
		FROM d
		WHERE $8::boolean AND e.id = d.endpoint_id AND e.disabled_at IS NULL
		RETURNING e.id
	), held AS (
		UPDATE webhook_deliveries SET endpoint_disabled = true
		WHERE id IN (
			SELECT o.id FROM webhook_deliveries AS o JOIN e ON o.endpoint_id = e.id
			WHERE o.status = 'pending' AND NOT o.endpoint_disabled AND o.id <> $1::uuid
			FOR UPDATE OF o SKIP LOCKED
		)
	)
	SELECT count(*) FROM d`

// FinishDelivery records the attempt in one statement; a delivery whose
// claim no longer holds, or that is gone, changes nothing (ErrConflict).
func (o outbox) FinishDelivery(ctx context.Context, id domain.DeliveryID, attempt int, res domain.DeliveryResult) error {
	switch res.Status {
	case domain.DeliveryPending, domain.DeliveryDelivered, domain.DeliveryFailed:
	default:
		return fmt.Errorf("finish delivery %s: %w: an attempt cannot end %q", id, domain.ErrInvalid, res.Status)
	}
	if !domain.StorableText(res.Error) {
		return fmt.Errorf("finish delivery %s: %w: an error with a NUL character", id, domain.ErrInvalid)
	}
	conflict := fmt.Errorf("finish delivery %s: %w: the claim of attempt %d no longer holds", id, domain.ErrConflict, attempt)
	did, ok := deliveryIDParam(id)
	if !ok {
		return conflict // no such delivery
	}
	var delivered any // NULL
	if res.Status == domain.DeliveryDelivered {
		delivered = nullTime(res.At)
	}
	disabledAt := res.At
	if disabledAt.IsZero() {
		disabledAt = o.now()
	}
	var n int
	err := o.db.QueryRowContext(ctx, finishDeliverySQL, did, attempt, string(res.Status), res.StatusCode, res.Error,
		nullTime(res.NextAttemptAt), delivered, res.DisableEndpoint, disabledAt).Scan(&n)
	if err != nil {
		return interpretError("finish delivery "+string(id), err)
	}
	if n == 0 {
		return conflict
	}
	return nil
}
