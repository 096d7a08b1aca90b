package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// leases are rows of the leases table, one per name.
type leases struct {
	db querier
}

// acquireLeaseSQL takes the lease $1 for $2 until $4, unless another
// holder has it at $3. An insert that meets the row, committed or not,
// waits for its lock, then updates it if the condition holds on its latest
// version: one statement, and no two holders, also across processes.
const acquireLeaseSQL = `
	INSERT INTO leases AS l (name, holder, held_until) VALUES ($1, $2, $4::timestamptz)
	ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, held_until = EXCLUDED.held_until
	WHERE l.holder = EXCLUDED.holder OR l.held_until < $3::timestamptz
	RETURNING l.holder`

// AcquireLease takes or renews the lease in one statement.
func (l leases) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	if name == "" || holder == "" || !domain.StorableText(name, holder) {
		return false, fmt.Errorf("acquire lease: %w: empty name or holder, or one with a NUL character", domain.ErrInvalid)
	}
	var got string
	err := l.db.QueryRowContext(ctx, acquireLeaseSQL, name, holder, now, until).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows): // another holder has it
		return false, nil
	case err != nil:
		return false, interpretError("acquire lease "+name, err)
	}
	return true, nil
}

// ReleaseLease deletes the holder's row; another holder's stays.
func (l leases) ReleaseLease(ctx context.Context, name, holder string) error {
	if !domain.StorableText(name, holder) {
		return nil // no lease has such a name or holder
	}
	_, err := l.db.ExecContext(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder)
	return interpretError("release lease "+name, err)
}
