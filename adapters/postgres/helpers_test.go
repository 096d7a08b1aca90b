package postgres_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
)

// contractPoolSize covers the contract suite's 20-goroutine races: every
// racer holds a connection for its transaction while it waits.
const contractPoolSize = 24

// newSchemaDB returns a pool on a fresh, migrated schema of the database at
// databaseURL, holding up to poolSize connections.
func newSchemaDB(t testing.TB, databaseURL string, poolSize int) *bun.DB {
	t.Helper()
	_, db := newSchema(t, databaseURL, poolSize)
	return db
}

// newSchema is newSchemaDB that also returns the URL of the schema.
func newSchema(t testing.TB, databaseURL string, poolSize int) (string, *bun.DB) {
	t.Helper()
	schemaURL := pgtest.NewSchema(t, databaseURL)
	db := pgtest.Open(t, withParam(t, schemaURL, "pool_max_conns", strconv.Itoa(poolSize)))
	// Idle connections of finished tests would otherwise pile up on the
	// shared server until the pool is closed.
	db.SetMaxIdleConns(2)
	pgtest.Migrate(t, db)
	return schemaURL, db
}

func withParam(t testing.TB, databaseURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func ctxTimeout(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// createMerchant stores a fresh merchant through the store.
func createMerchant(t testing.TB, st *postgres.Store) domain.Merchant {
	t.Helper()
	m := domain.Merchant{
		ID: domain.MerchantID(domain.NewID()), Name: "Test merchant",
		StripeAccountID: "acct_" + strings.ReplaceAll(domain.NewID(), "-", ""), CreatedAt: now(),
	}
	_, key, err := domain.NewAPIKey(m.ID, now())
	if err != nil {
		t.Fatalf("api key: %v", err)
	}
	if err := st.Merchants().CreateMerchant(ctxTimeout(t), m, key); err != nil {
		t.Fatalf("create merchant: %v", err)
	}
	return m
}

func newTask(m domain.MerchantID, typ domain.TaskType, invoice string, attempt int) domain.Task {
	at := now()
	return domain.Task{
		ID: domain.TaskID(domain.NewID()), MerchantID: m, Type: typ, Status: domain.StatusPending,
		StripeEventID: "evt_" + domain.NewID()[:8], StripeInvoiceID: invoice, InvoiceAttempt: attempt,
		AmountDue: 2000, Currency: "usd", RunAt: at.Add(time.Hour), CreatedAt: at, UpdatedAt: at,
	}
}
