package postgres_test

import (
	"testing"

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
	for _, table := range []string{"merchants", "api_keys", "processed_events", "tasks", "invoice_recoveries"} {
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

func newSchemaDBUnmigrated(t *testing.T) *bun.DB {
	t.Helper()
	return pgtest.Open(t, pgtest.NewSchema(t, pgtest.NewDatabase(t)))
}
