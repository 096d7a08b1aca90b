package postgres_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/matryer/is"
	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/migrations"
)

func TestMigrateUpDownUp(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	db := pgtest.Open(t, pgtest.NewDatabase(t))
	var all []string
	for _, m := range migrations.Migrations.Sorted() {
		all = append(all, m.String())
	}

	tableExists := func(name string) bool {
		t.Helper()
		var reg *string
		if err := db.NewRaw("SELECT to_regclass(?)::text", name).Scan(ctx, &reg); err != nil {
			t.Fatalf("to_regclass: %v", err)
		}
		return reg != nil
	}

	pending, err := postgres.PendingMigrations(ctx, db)
	is.NoErr(err)
	is.Equal(pending, all)                     // a fresh database has every migration pending
	is.True(!tableExists("recoup_migrations")) // and asking did not write to it

	is.NoErr(postgres.Migrate(ctx, db))
	applied, pending, err := postgres.MigrationStatus(ctx, db)
	is.NoErr(err)
	is.Equal(applied, all)    // every migration is applied
	is.Equal(len(pending), 0) // none is left
	pending, err = postgres.PendingMigrations(ctx, db)
	is.NoErr(err)
	is.Equal(len(pending), 0) // a migrated database has nothing pending
	for _, table := range []string{"merchants", "api_keys", "processed_events", "tasks", "invoices", "merchant_policies",
		"email_reservations", "leases", "webhook_endpoints", "webhook_deliveries"} {
		is.True(tableExists(table)) // the schema's tables exist
	}
	is.NoErr(postgres.Migrate(ctx, db)) // migrating a migrated database is a no-op

	is.NoErr(postgres.Rollback(ctx, db))
	applied, pending, err = postgres.MigrationStatus(ctx, db)
	is.NoErr(err)
	is.Equal(len(applied), 0)      // rollback undid the group
	is.Equal(pending, all)         // so everything is pending again
	is.True(!tableExists("tasks")) // and the tables are gone

	is.NoErr(postgres.Migrate(ctx, db))
	pending, err = postgres.PendingMigrations(ctx, db)
	is.NoErr(err)
	is.Equal(len(pending), 0) // up again after down
	st := postgres.New(db)
	is.NoErr(st.Ping(ctx))
	m := createMerchant(t, st)
	stored, err := st.Tasks().Schedule(ctx, m.ID, []domain.Task{newTask(m.ID, domain.TypeNotifyActionRequired, "in_1", 1)})
	is.NoErr(err)
	is.Equal(len(stored), 1) // the re-created schema works
}

func TestMigrateIntoSchemaOfSearchPath(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	dbURL := pgtest.NewDatabase(t)
	schemaURL := pgtest.NewSchema(t, dbURL)
	db := pgtest.Open(t, schemaURL)
	is.NoErr(postgres.Migrate(ctx, db))

	var schema string
	is.NoErr(db.NewRaw("SELECT current_schema()").Scan(ctx, &schema))
	var schemas []string
	is.NoErr(db.NewRaw(`SELECT DISTINCT table_schema FROM information_schema.tables
		WHERE table_name IN ('tasks', 'merchants', 'recoup_migrations') ORDER BY 1`).Scan(ctx, &schemas))
	is.Equal(schemas, []string{schema}) // recoup's tables are all in the search_path's schema, none in public

	other := pgtest.Open(t, dbURL)
	pending, err := postgres.PendingMigrations(ctx, other)
	is.NoErr(err)
	is.True(len(pending) > 0) // the public schema of the same database is untouched
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	db := newSchemaDBUnmigrated(t)

	const n = 4
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			errs <- postgres.Migrate(ctx, db)
		}()
	}
	close(start)
	for range n {
		is.NoErr(<-errs) // every migrator succeeds: the later ones find nothing to do
	}
	var applied int
	is.NoErr(db.NewRaw("SELECT count(*) FROM recoup_migrations").Scan(ctx, &applied))
	is.Equal(applied, len(migrations.Migrations.Sorted())) // each migration is recorded once

	// A migrator that died holding bun's lock row does not block the next.
	_, err := db.NewRaw("INSERT INTO recoup_migration_locks (table_name) VALUES ('recoup_migrations')").Exec(ctx)
	is.NoErr(err)
	is.NoErr(postgres.Migrate(ctx, db)) // the stale lock is cleared
}

// migrationsFrom lists the migrations from name (a timestamp) on, oldest
// first, as MigrationStatus names them.
func migrationsFrom(name string) []string {
	var out []string
	for _, m := range migrations.Migrations.Sorted() {
		if m.Name >= name {
			out = append(out, m.String())
		}
	}
	return out
}

func newSchemaDBUnmigrated(t *testing.T) *bun.DB {
	t.Helper()
	return pgtest.Open(t, pgtest.NewSchema(t, pgtest.NewDatabase(t)))
}

// TestMigrateRecoveriesToInvoiceRecords fills the recovery figures' table
// of the schema before invoice records, migrates, and checks that each row
// became the record of its failure (and payment), with the same figures;
// then rolls back and checks that the records became rows again.
func TestMigrateRecoveriesToInvoiceRecords(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	db := newSchemaDBUnmigrated(t)
	is.NoErr(postgres.MigrateBefore(ctx, db, "20261206000000"))

	m := domain.MerchantID(domain.NewID())
	failedAt, paidAt := now().Add(-time.Hour), now()
	_, err := db.NewRaw(`INSERT INTO invoice_recoveries (merchant_id, invoice_id, currency, failed_amount, recovered_amount, failed_at, recovered_at)
		VALUES (?, 'in_open', 'usd', 5000, 0, ?, NULL), (?, 'in_paid', 'eur', 700, 650, ?, ?)`,
		m, failedAt, m, failedAt, paidAt).Exec(ctx)
	is.NoErr(err)

	is.NoErr(postgres.Migrate(ctx, db))
	st := postgres.New(db)
	open, err := st.Ledger().Invoice(ctx, m, "in_open")
	is.NoErr(err)
	is.Equal(open, domain.InvoiceRecord{MerchantID: m, InvoiceID: "in_open", Currency: "usd", AmountDue: 5000,
		FirstFailedAt: failedAt, LastFailedAt: failedAt, StripeAttempts: 1}) // an open row is a failure of its amount
	paid, err := st.Ledger().Invoice(ctx, m, "in_paid")
	is.NoErr(err)
	is.Equal(paid, domain.InvoiceRecord{MerchantID: m, InvoiceID: "in_paid", Currency: "eur", AmountDue: 700,
		FirstFailedAt: failedAt, LastFailedAt: failedAt, StripeAttempts: 1, Status: domain.InvoicePaid,
		ClosedAt: paidAt, PaidAmount: 650, RecoveredBy: domain.RecoveredByCustomer}) // a recovered one was paid after it
	figures, err := st.Ledger().Recovery(ctx, m)
	is.NoErr(err)
	is.Equal(figures, map[string]domain.CurrencyRecovery{
		"usd": {FailedAmount: 5000}, "eur": {FailedAmount: 700, RecoveredAmount: 650}}) // the figures are those of the rows

	_, err = st.Ledger().Record(ctx, m, domain.InvoiceFact{Kind: domain.FactPaid, InvoiceID: "in_open", Amount: 5000, At: paidAt, AttemptCount: 2})
	is.NoErr(err)
	_, err = st.Ledger().Record(ctx, m, domain.InvoiceFact{Kind: domain.FactPaid, InvoiceID: "in_never_failed", Currency: "usd", Amount: 99, At: paidAt})
	is.NoErr(err)
	is.NoErr(st.Policies().SetPolicy(ctx, m, domain.DefaultDunningPolicy()))
	kept := newTask(m, domain.TypeRetryPayment, "in_open", 1)
	kept.DeclineCode, kept.Reason = "insufficient_funds", domain.ReasonSuperseded
	_, err = st.Tasks().Schedule(ctx, m, []domain.Task{kept, newTask(m, domain.TypeEndDunning, "in_open", 1)})
	is.NoErr(err)

	is.NoErr(postgres.Rollback(ctx, db))
	applied, pending, err := postgres.MigrationStatus(ctx, db)
	is.NoErr(err)
	is.Equal(pending, migrationsFrom("20261206000000")) // the rollback undid the last group: this migration and the later ones
	is.True(len(applied) > 0)
	type row struct {
		Invoice, Currency string
		Failed, Recovered int64
		FailedAt          time.Time
		RecoveredAt       *time.Time
	}
	var rows []row
	is.NoErr(db.NewRaw(`SELECT invoice_id AS invoice, currency, failed_amount AS failed, recovered_amount AS recovered,
		failed_at, recovered_at FROM invoice_recoveries WHERE merchant_id = ? ORDER BY invoice_id`, m).Scan(ctx, &rows))
	is.Equal(len(rows), 2) // a row per failed invoice, none for the invoice that never failed
	for i, want := range []row{
		{Invoice: "in_open", Currency: "usd", Failed: 5000, Recovered: 5000, FailedAt: failedAt, RecoveredAt: &paidAt},
		{Invoice: "in_paid", Currency: "eur", Failed: 700, Recovered: 650, FailedAt: failedAt, RecoveredAt: &paidAt},
	} {
		got := rows[i]
		is.Equal(got.Invoice, want.Invoice)
		is.Equal(got.Currency, want.Currency)
		is.Equal(got.Failed, want.Failed)
		is.Equal(got.Recovered, want.Recovered) // recovered with what was paid, also after the migration
		is.True(got.FailedAt.Equal(want.FailedAt))
		is.True(got.RecoveredAt != nil && got.RecoveredAt.Equal(*want.RecoveredAt))
	}
	var types []string
	is.NoErr(db.NewRaw(`SELECT type FROM tasks WHERE merchant_id = ?`, m).Scan(ctx, &types))
	is.Equal(types, []string{"retry_payment"}) // a task of a type the earlier schema knows stays; the others go

	is.NoErr(postgres.Migrate(ctx, db)) // and up again
}

// TestMigrateCardsEmailsLeasesAndOutbound fills the schema before
// 20261207000000 with notify_card_expiring tasks, which name no card
// there, migrates, and checks that one of each merchant and expiry month
// stays, and that the new tables work through the store; then rolls back
// and checks that they are gone and the tasks stay.
func TestMigrateCardsEmailsLeasesAndOutbound(t *testing.T) {
	is := is.New(t)
	ctx := ctxTimeout(t)
	db := newSchemaDBUnmigrated(t)
	const name = "20261207000000"
	is.NoErr(postgres.MigrateBefore(ctx, db, name))

	m, other := domain.MerchantID(domain.NewID()), domain.MerchantID(domain.NewID())
	t0 := now().Add(-time.Hour)
	type card struct {
		merchant domain.MerchantID
		month    int
		at       time.Time
	}
	cards := []card{
		{m, 202708, t0}, {m, 202708, t0.Add(time.Minute)}, {m, 202708, t0.Add(2 * time.Minute)}, // one month thrice
		{m, 202709, t0.Add(time.Minute)},     // the next month
		{other, 202708, t0.Add(time.Minute)}, // another merchant's
	}
	ids := make([]string, len(cards))
	for i, c := range cards {
		ids[i] = domain.NewID()
		_, err := db.NewRaw(`INSERT INTO tasks (id, merchant_id, type, status, invoice_attempt, run_at, created_at, updated_at)
			VALUES (?, ?, 'notify_card_expiring', 'pending', ?, ?, ?, ?)`, ids[i], c.merchant, c.month, c.at, c.at, c.at).Exec(ctx)
		is.NoErr(err)
	}

	is.NoErr(postgres.Migrate(ctx, db))
	var kept []string
	is.NoErr(db.NewRaw(`SELECT id::text FROM tasks WHERE type = 'notify_card_expiring' AND stripe_payment_method_id = ''
		ORDER BY created_at, id`).Scan(ctx, &kept))
	want := []string{ids[0], ids[3], ids[4]}
	slices.Sort(want[1:]) // created at the same instant: by id
	is.Equal(kept, want)  // the earliest of a merchant's month stays, and every other month and merchant

	st := postgres.New(db)
	merchant := createMerchant(t, st)
	expiring := newTask(merchant.ID, domain.TypeNotifyCardExpiring, "", 202708)
	expiring.StripePaymentMethodID = "card_1"
	again := newTask(merchant.ID, domain.TypeNotifyCardExpiring, "", 202708)
	again.StripePaymentMethodID = "card_1"
	stored, err := st.Tasks().Schedule(ctx, merchant.ID, []domain.Task{expiring, again})
	is.NoErr(err)
	is.Equal(len(stored), 1) // once per card and month
	is.Equal(stored[0].StripePaymentMethodID, "card_1")
	e, err := domain.NewWebhookEndpoint(merchant.ID, "https://hooks.example/migrated", []string{"*"}, now())
	is.NoErr(err)
	_, err = st.Endpoints().CreateEndpoint(ctx, merchant.ID, e)
	is.NoErr(err)
	n, err := st.Outbox().Enqueue(ctx, merchant.ID, domain.OutboundMessage{Type: domain.OutboundTaskSucceeded, Payload: []byte(`{}`), At: now()})
	is.NoErr(err)
	is.Equal(n, 1) // the outbox works
	ok, err := st.Emails().ReserveEmail(ctx, merchant.ID, "cus_1", now(), time.Hour, 1)
	is.NoErr(err)
	is.True(ok) // and the email cap
	ok, err = st.Leases().AcquireLease(ctx, "reconcile", "me", now(), now().Add(time.Minute))
	is.NoErr(err)
	is.True(ok) // and the leases

	is.NoErr(postgres.Rollback(ctx, db))
	_, pending, err := postgres.MigrationStatus(ctx, db)
	is.NoErr(err)
	is.Equal(pending, migrationsFrom(name)) // the rollback undid this migration
	for _, table := range []string{"email_reservations", "leases", "webhook_endpoints", "webhook_deliveries"} {
		var reg *string
		is.NoErr(db.NewRaw("SELECT to_regclass(?)::text", table).Scan(ctx, &reg))
		is.True(reg == nil) // its tables are gone
	}
	var columns int
	is.NoErr(db.NewRaw(`SELECT count(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'tasks' AND column_name = 'stripe_payment_method_id'`).Scan(ctx, &columns))
	is.Equal(columns, 0) // and the tasks' card
	var cardTasks int
	is.NoErr(db.NewRaw(`SELECT count(*) FROM tasks WHERE type = 'notify_card_expiring'`).Scan(ctx, &cardTasks))
	is.Equal(cardTasks, 4) // the tasks stay

	is.NoErr(postgres.Migrate(ctx, db)) // and up again
	_, err = db.NewRaw(`INSERT INTO tasks (id, merchant_id, type, status, invoice_attempt, run_at, created_at, updated_at)
		SELECT gen_random_uuid(), merchant_id, type, 'pending', invoice_attempt, now(), now(), now()
		FROM tasks WHERE id = ?`, ids[0]).Exec(ctx)
	var pgErr *pgconn.PgError
	is.True(errors.As(err, &pgErr) && pgErr.Code == "23505") // the rule holds again
}
