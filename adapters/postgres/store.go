package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// Store is recoup's storage on PostgreSQL.
type Store struct {
	db bun.IDB // for transactions
	// sql runs the statements on db (see sqlOf).
	sql querier
	// now stamps the idempotency locks, whose age retention judges, the
	// policies, and deliveries as they are enqueued.
	now func() time.Time
}

var _ ports.Storage = (*Store)(nil)

// New returns the storage on db, whose schema must be migrated (Migrate).
// db is usually the *bun.DB from Open, but any bun.IDB works, such as an
// application's own *bun.DB on pgx.
func New(db bun.IDB) *Store {
	return &Store{db: db, sql: sqlOf(db), now: func() time.Time { return time.Now().UTC() }}
}

// InTx runs fn in one transaction (READ COMMITTED) and commits if fn returns
// nil; otherwise, or if fn panics, it rolls back. The event lock fn takes is
// a row of that transaction, so it commits or rolls back with the effects.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx ports.Tx) error) error {
	var began bool
	var fnErr error
	// RunInTx rolls back when fn returns an error and, through a deferred
	// call, when fn panics; the panic then continues up the stack.
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		began = true
		fnErr = fn(ctx, txScope{db: tx.Tx, now: s.now})
		return fnErr
	})
	switch {
	case err == nil:
		return nil
	case !began:
		return interpretError("begin transaction", err)
	case fnErr != nil:
		return fnErr
	}
	// Whether a failed commit took effect cannot be known from here; the
	// caller can only try again, and the lock makes that safe.
	if cerr := interpretError("commit", err); errors.Is(cerr, domain.ErrUnavailable) {
		return cerr
	}
	return fmt.Errorf("commit: %w: %w", domain.ErrUnavailable, err)
}

// Ping reports whether the server answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.sql.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return interpretError("ping database", err)
	}
	return nil
}

// Tasks returns the tenant-scoped task repository, outside any unit of
// work.
func (s *Store) Tasks() ports.TenantTaskRepository { return taskRepo{db: s.sql, store: s} }

// Ledger returns the invoice ledger, outside any unit of work.
func (s *Store) Ledger() ports.InvoiceLedger { return ledger{db: s.sql, store: s} }

// Policies returns the merchants' policies, outside any unit of work.
func (s *Store) Policies() ports.PolicyStore { return policyStore{db: s.sql, now: s.now} }

// Merchants returns the merchant directory.
func (s *Store) Merchants() ports.MerchantDirectory { return merchantDir{bun: s.db, db: s.sql} }

// Queue returns the worker's view of the tasks.
func (s *Store) Queue() ports.TaskQueue { return taskQueue{db: s.sql, now: s.now} }

// Emails returns the email log of the weekly cap.
func (s *Store) Emails() ports.EmailLog { return emailLog{store: s} }

// Leases returns the named leases.
func (s *Store) Leases() ports.Leases { return leases{db: s.sql} }

// Endpoints returns the merchants' webhook endpoints.
func (s *Store) Endpoints() ports.WebhookEndpoints { return endpoints{db: s.sql, store: s} }

// Outbox returns the outbox, outside any unit of work.
func (s *Store) Outbox() ports.Outbox { return outbox{db: s.sql, now: s.now} }

// inTx runs fn in a transaction of its own (a savepoint when the store is
// on a caller's transaction), for a call whose statements must share one.
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, db querier) error) error {
	return s.InTx(ctx, func(ctx context.Context, tx ports.Tx) error { return fn(ctx, tx.(txScope).db) })
}

// PruneEvents deletes up to batch idempotency locks recorded before cutoff
// in one short statement; rows another pruner is deleting at the same
// moment are skipped rather than waited for.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	return deleteBatch(ctx, s.sql, "prune events", "processed_events", "processed_at < $1", cutoff, batch)
}

// deleteBatch deletes up to batch rows of table that match where ($1 is
// arg) in one short statement, skipping rows another transaction holds
// (another pruner's), and returns how many it deleted. what names the
// operation in errors.
func deleteBatch(ctx context.Context, db querier, what, table, where string, arg any, batch int) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("%s: %w: batch must be positive", what, domain.ErrInvalid)
	}
	n, err := rowsAffected(ctx, db, `
		DELETE FROM `+table+`
		WHERE ctid IN (
			SELECT ctid FROM `+table+`
			WHERE `+where+`
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		)`, arg, batch)
	if err != nil {
		return 0, interpretError(what, err)
	}
	return int(n), nil
}

// txScope is what a unit of work sees: every repository on the one
// transaction.
type txScope struct {
	db  *sql.Tx
	now func() time.Time
}

func (t txScope) Events() ports.EventLocker         { return eventLocker(t) }
func (t txScope) Tasks() ports.TenantTaskRepository { return taskRepo{db: t.db} }
func (t txScope) Ledger() ports.InvoiceLedger       { return ledger{db: t.db} }
func (t txScope) Policies() ports.PolicyStore       { return policyStore{db: t.db, now: t.now} }
func (t txScope) Queue() ports.TaskQueue            { return taskQueue{db: t.db, now: t.now} }
func (t txScope) Outbox() ports.Outbox              { return outbox{db: t.db, now: t.now} }

// eventLocker takes idempotency locks in its transaction.
type eventLocker struct {
	db  *sql.Tx
	now func() time.Time
}

// AttemptEventLock inserts the event's lock row. The primary key decides:
// if another transaction holds the row uncommitted, PostgreSQL makes this
// insert wait for it, then either finds the committed row (DO NOTHING,
// nothing returned: a duplicate) or, after a rollback, inserts it.
func (l eventLocker) AttemptEventLock(ctx context.Context, eventID string) (bool, error) {
	if eventID == "" || !domain.StorableText(eventID) {
		return false, fmt.Errorf("event lock: %w: empty event id or one with a NUL character", domain.ErrInvalid)
	}
	var got string
	err := l.db.QueryRowContext(ctx, `
		INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2)
		ON CONFLICT (event_id) DO NOTHING
		RETURNING event_id`, eventID, l.now()).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, interpretError("event lock "+eventID, err)
	}
	return true, nil
}
