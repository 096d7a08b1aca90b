package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"
	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/ports"
	"github.com/recoupdev/recoup/ports/porttest"
)

// TestStorageContractQueryModes runs the storage contract in the query
// modes that keep no prepared statement on the server, which a URL picks
// for PgBouncer in transaction mode: there pgx, not the server, decides
// the parameters' types (exec) or writes them into the text
// (simple_protocol).
func TestStorageContractQueryModes(t *testing.T) {
	databaseURL := pgtest.NewDatabase(t)
	for _, mode := range []string{"exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			porttest.RunStorageContract(t, func(t *testing.T) ports.Storage {
				schemaURL, _ := newSchema(t, databaseURL, 2)
				u := withParam(t, withParam(t, schemaURL, "pool_max_conns", "24"), "default_query_exec_mode", mode)
				db := pgtest.Open(t, u)
				db.SetMaxIdleConns(2)
				return postgres.New(db)
			})
		})
	}
}

// TestOpenQueryExecMode: Open prepares the store's statements on the
// server (pgx's default mode), unless the URL chooses a mode that does not.
func TestOpenQueryExecMode(t *testing.T) {
	databaseURL := pgtest.NewDatabase(t)
	cases := []struct {
		mode     string // default_query_exec_mode, or none
		prepared bool
	}{
		{"", true},
		{"exec", false},
		{"simple_protocol", false},
	}
	for _, c := range cases {
		t.Run("mode="+c.mode, func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			ctx := ctxTimeout(t)
			schemaURL, _ := newSchema(t, databaseURL, 2)
			// One connection: the one that ran the store's statement
			// answers the question.
			u := withParam(t, schemaURL, "pool_max_conns", "1")
			if c.mode != "" {
				u = withParam(t, u, "default_query_exec_mode", c.mode)
			}
			db := pgtest.Open(t, u)
			st := postgres.New(db)
			m := createMerchant(t, st)
			_, err := st.Merchants().MerchantByID(ctx, m.ID)
			is.NoErr(err)
			var n int
			// The pattern is a parameter, so that this statement's own
			// text does not match it.
			err = db.DB.QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE $1`,
				"%FROM merchants WHERE id = $1%").Scan(&n)
			is.NoErr(err)
			is.Equal(n > 0, c.prepared) // the merchant read is a prepared statement on the server, or not
		})
	}
}

// wrappedDB is an application's own bun.IDB, say one that instruments
// every query: the store cannot reach the database/sql handle beneath it
// and sends its statements through bun.
type wrappedDB struct {
	bun.IDB
}

// TestStorageContractWrappedIDB runs the storage contract on such a
// wrapper.
func TestStorageContractWrappedIDB(t *testing.T) {
	databaseURL := pgtest.NewDatabase(t)
	porttest.RunStorageContract(t, func(t *testing.T) ports.Storage {
		return postgres.New(wrappedDB{IDB: newSchemaDB(t, databaseURL, contractPoolSize)})
	})
}

// TestStoreInCallersTransaction: a store on the application's bun.Tx runs
// every statement in that transaction, its units of work as savepoints, so
// the application's rollback takes all of it back.
func TestStoreInCallersTransaction(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	db := newSchemaDB(t, pgtest.NewDatabase(t), 4)

	rollback := errors.New("roll back")
	var merchant domain.Merchant
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		st := postgres.New(tx)
		merchant = createMerchant(t, st)
		m := merchant.ID
		notify := newTask(m, domain.TypeNotifyPaymentFailed, "in_embedded", 1)
		retry := newTask(m, domain.TypeRetryPayment, "in_embedded", 1)
		is.NoErr(st.InTx(ctx, func(ctx context.Context, utx ports.Tx) error {
			ok, err := utx.Events().AttemptEventLock(ctx, "evt_embedded")
			is.NoErr(err)
			is.True(ok) // the lock is taken in the caller's transaction
			stored, err := utx.Tasks().Schedule(ctx, m, []domain.Task{notify, retry})
			is.NoErr(err)
			is.Equal(len(stored), 2) // both tasks are stored
			return nil
		}))
		got, err := st.Tasks().Get(ctx, m, retry.ID)
		is.NoErr(err)
		is.Equal(got.ID, retry.ID) // the savepoint's rows are visible in the transaction
		claimed, err := st.Queue().ClaimDue(ctx, retry.RunAt, time.Minute, 10)
		is.NoErr(err)
		is.Equal(len(claimed), 2) // the claim runs in the caller's transaction too
		found, err := st.Merchants().MerchantByStripeAccount(ctx, merchant.StripeAccountID)
		is.NoErr(err)
		is.Equal(found.ID, m) // as do the merchant reads
		return rollback
	})
	is.True(errors.Is(err, rollback)) // the caller rolls back

	_, err = postgres.New(db).Merchants().MerchantByID(ctx, merchant.ID)
	is.True(errors.Is(err, domain.ErrNotFound)) // and nothing of it stays
}
