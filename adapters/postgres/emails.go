package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// emailLog counts the emails reserved per merchant and customer in
// email_reservations: a row per instant, with how many were reserved at
// it.
type emailLog struct {
	store *Store
}

// Statements of the email log. lockCustomerSQL takes the transaction
// advisory lock of a merchant's customer ($1, $2): every reservation and
// release of the customer takes it first, so they count one after the
// other, on any number of processes. The key is a hash: two customers that
// share one only wait for each other.
const (
	lockCustomerSQL = `SELECT pg_advisory_xact_lock(hashtext('recoup email cap'), hashtext($1::text || ' ' || $2::text))`
	// reserveEmailSQL stores a reservation at $3 if fewer than $5 are
	// stored after $4 (at-window), later ones included.
	reserveEmailSQL = `
		INSERT INTO email_reservations AS r (merchant_id, customer, reserved_at, emails)
		SELECT $1::uuid, $2::text, $3::timestamptz, 1
		WHERE (SELECT COALESCE(sum(emails), 0) FROM email_reservations
		       WHERE merchant_id = $1::uuid AND customer = $2::text AND reserved_at > $4::timestamptz) < $5::int
		ON CONFLICT (merchant_id, customer, reserved_at) DO UPDATE SET emails = r.emails + 1
		RETURNING r.emails`
	// releaseEmailSQL takes one reservation at $3 away: the row goes with
	// its last one.
	releaseEmailSQL = `
		WITH last AS (
			DELETE FROM email_reservations
			WHERE merchant_id = $1 AND customer = $2 AND reserved_at = $3 AND emails = 1
		)
		UPDATE email_reservations SET emails = emails - 1
		WHERE merchant_id = $1 AND customer = $2 AND reserved_at = $3 AND emails > 1`
)

// ReserveEmail counts and reserves in one transaction, under the
// customer's advisory lock. The count is a statement after the lock's, so
// that, in READ COMMITTED, it sees every reservation committed while this
// one waited: a count in the statement that waits would read the snapshot
// taken before the wait.
func (l emailLog) ReserveEmail(ctx context.Context, merchant domain.MerchantID, customer string, at time.Time, window time.Duration, max int) (bool, error) {
	mid, err := merchantParam(merchant)
	if err != nil {
		return false, fmt.Errorf("reserve email: %w", err)
	}
	if !domain.StorableText(customer) {
		return false, fmt.Errorf("reserve email: %w: a customer with a NUL character", domain.ErrInvalid)
	}
	if max < 1 {
		return false, nil
	}
	reserved := false
	err = l.store.inTx(ctx, func(ctx context.Context, db querier) error {
		if _, err := db.ExecContext(ctx, lockCustomerSQL, mid, customer); err != nil {
			return interpretError("reserve email: lock the customer", err)
		}
		var n int
		err := db.QueryRowContext(ctx, reserveEmailSQL, mid, customer, at, at.Add(-window), max).Scan(&n)
		switch {
		case errors.Is(err, sql.ErrNoRows): // the cap is reached
			return nil
		case err != nil:
			return interpretError("reserve email", err)
		}
		reserved = true
		return nil
	})
	return reserved, err
}

// ReleaseEmail takes the customer's lock too, so that a release and a
// concurrent reservation or release of the same instant do not cross.
func (l emailLog) ReleaseEmail(ctx context.Context, merchant domain.MerchantID, customer string, at time.Time) error {
	mid, err := merchantParam(merchant)
	if err != nil {
		return fmt.Errorf("release email: %w", err)
	}
	if !domain.StorableText(customer) {
		return nil // no such customer has reservations
	}
	return l.store.inTx(ctx, func(ctx context.Context, db querier) error {
		if _, err := db.ExecContext(ctx, lockCustomerSQL, mid, customer); err != nil {
			return interpretError("release email: lock the customer", err)
		}
		_, err := db.ExecContext(ctx, releaseEmailSQL, mid, customer, at)
		return interpretError("release email", err)
	})
}

// PruneEmails deletes whole rows: a row of several reservations at one
// instant counts as one. The scan has no index of its own to use: the
// table holds a few weeks of emails once pruned, and pruning runs hourly.
func (l emailLog) PruneEmails(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	return deleteBatch(ctx, l.store.sql, "prune email reservations", "email_reservations", "reserved_at < $1", cutoff, batch)
}
