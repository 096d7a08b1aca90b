package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/ports"
)

// TestPruneEventsInBatches loads many old locks and prunes them with two
// concurrent pruners: every batch is bounded, the pruners never take the
// same rows (SKIP LOCKED), and together they delete exactly the old rows.
func TestPruneEventsInBatches(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	db := newSchemaDB(t, pgtest.NewDatabase(t), 4)
	st := postgres.New(db)

	const old, batch = 25_000, 1_000
	_, err := db.NewRaw(`INSERT INTO processed_events (event_id, processed_at)
		SELECT 'evt_old_' || i, now() - interval '40 days' - i * interval '1 second'
		FROM generate_series(1, ?) AS i`, old).Exec(ctx)
	is.NoErr(err)
	const recent = 10
	for i := range recent {
		is.NoErr(st.InTx(ctx, func(ctx context.Context, tx ports.Tx) error {
			_, err := tx.Events().AttemptEventLock(ctx, fmt.Sprintf("evt_recent_%d", i))
			return err
		}))
	}

	cutoff := time.Now().Add(-30 * 24 * time.Hour)
	type result struct {
		batches []int
		err     error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			var r result
			for {
				n, err := st.PruneEvents(ctx, cutoff, batch)
				if err != nil {
					r.err = err
					break
				}
				r.batches = append(r.batches, n)
				if n < batch {
					break
				}
			}
			results <- r
		}()
	}
	deleted, calls := 0, 0
	for range 2 {
		r := <-results
		is.NoErr(r.err) // pruning never fails
		for _, n := range r.batches {
			is.True(n <= batch) // no batch exceeds its size
			deleted += n
			calls++
		}
	}
	is.Equal(deleted, old)      // the pruners deleted every old lock, none twice
	is.True(calls >= old/batch) // in batches
	var left, leftOld int
	is.NoErr(db.NewRaw(`SELECT count(*), count(*) FILTER (WHERE processed_at < ?) FROM processed_events`, cutoff).
		Scan(ctx, &left, &leftOld))
	is.Equal(leftOld, 0)   // no old lock is left
	is.Equal(left, recent) // the recent locks are kept

	n, err := st.PruneEvents(ctx, cutoff, batch)
	is.NoErr(err)
	is.Equal(n, 0) // nothing more to prune
	_, err = st.PruneEvents(ctx, cutoff, 0)
	is.True(err != nil) // a batch must be positive
}
