package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/recoupdev/recoup/migrations"
)

// recoup's migration bookkeeping tables. Their own names keep them apart
// from bun's defaults, which an embedding application may use for its own
// migrations in the same schema.
const (
	migrationsTable     = "recoup_migrations"
	migrationLocksTable = "recoup_migration_locks"
)

func newMigrator(db *bun.DB) *migrate.Migrator {
	return migrate.NewMigrator(db, migrations.Migrations,
		migrate.WithTableName(migrationsTable),
		migrate.WithLocksTableName(migrationLocksTable),
		// Without this, bun marks a migration applied before running it,
		// and a failed migration would count as done.
		migrate.WithMarkAppliedOnSuccess(true),
	)
}

// Migrate applies every pending migration, as one group, to the first
// schema of db's search_path. Migrators started at the same time on one
// schema run one after the other (see withMigrationLock), so each
// migration is applied once.
func Migrate(ctx context.Context, db *bun.DB) error {
	_, err := ApplyMigrations(ctx, db)
	return err
}

// ApplyMigrations is Migrate, and also returns the names of the migrations
// it applied (timestamp_comment), oldest first: none when nothing was
// pending.
func ApplyMigrations(ctx context.Context, db *bun.DB) ([]string, error) {
	group, err := withMigrationLock(ctx, db, func(m *migrate.Migrator) (*migrate.MigrationGroup, error) {
		return m.Migrate(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	return groupNames(group), nil
}

// Rollback undoes the last group of applied migrations: what the last
// Migrate applied. With nothing applied it does nothing.
func Rollback(ctx context.Context, db *bun.DB) error {
	_, err := RollbackMigrations(ctx, db)
	return err
}

// RollbackMigrations is Rollback, and also returns the names of the
// migrations it rolled back, oldest first: none when nothing was applied.
func RollbackMigrations(ctx context.Context, db *bun.DB) ([]string, error) {
	group, err := withMigrationLock(ctx, db, func(m *migrate.Migrator) (*migrate.MigrationGroup, error) {
		return m.Rollback(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("migrate down: %w", err)
	}
	return groupNames(group), nil
}

// LastMigrationGroup lists, oldest first, the migrations that Rollback
// would undo now: the group the last Migrate applied. It only reads; none
// on a database that never saw Migrate.
func LastMigrationGroup(ctx context.Context, db *bun.DB) ([]string, error) {
	var table *string
	if err := db.NewRaw("SELECT to_regclass(?)::text", migrationsTable).Scan(ctx, &table); err != nil {
		return nil, interpretError("look up migration table", err)
	}
	if table == nil {
		return nil, nil
	}
	ms, err := newMigrator(db).MigrationsWithStatus(ctx)
	if err != nil {
		return nil, interpretError("read migration status", err)
	}
	return groupNames(ms.LastGroup()), nil
}

// groupNames lists a group's migrations by name, oldest first.
func groupNames(g *migrate.MigrationGroup) []string {
	if g == nil {
		return nil
	}
	var names []string
	for _, mig := range g.Migrations {
		names = append(names, mig.String())
	}
	slices.Sort(names)
	return names
}

// withMigrationLock runs a migrator while holding a PostgreSQL advisory
// lock named after the schema, so that migrators started at the same time
// (two deploys, say) run one after the other: the second finds nothing
// left to do. bun's own lock, a row in recoup_migration_locks, fails the
// second migrator instead, and stays behind if a migrator dies; under the
// advisory lock no other migrator can be running, so a row left there is
// stale and is cleared first.
func withMigrationLock(ctx context.Context, db *bun.DB, run func(*migrate.Migrator) (*migrate.MigrationGroup, error)) (group *migrate.MigrationGroup, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, interpretError("connect for migrations", err)
	}
	defer func() { _ = conn.Close() }()
	const key = "hashtext('recoup_migrations.' || current_schema())"
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+key+")"); err != nil {
		return nil, interpretError("wait for other migrations", err)
	}
	defer func() {
		// Unlock even if ctx ended; closing the connection would release
		// the lock too, but the pool may keep the connection open.
		if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+key+")"); uerr != nil && err == nil {
			err = interpretError("release migration lock", uerr)
		}
	}()

	m := newMigrator(db)
	if err := m.Init(ctx); err != nil {
		return nil, interpretError("create migration tables", err)
	}
	if _, err := db.NewDelete().TableExpr(migrationLocksTable).Where("TRUE").Exec(ctx); err != nil {
		return nil, interpretError("clear stale migration lock", err)
	}
	if err := m.Lock(ctx); err != nil {
		return nil, interpretError("lock migrations", err)
	}
	group, err = run(m)
	if uerr := m.Unlock(ctx); uerr != nil && err == nil {
		err = interpretError("unlock migrations", uerr)
	}
	if err != nil {
		return nil, interpretError("run migrations", err)
	}
	return group, nil
}

// MigrationStatus lists the migrations applied to db and those pending, by
// name (timestamp_comment), oldest first. It only reads: on a database that
// never saw Migrate, every migration is pending.
func MigrationStatus(ctx context.Context, db *bun.DB) (applied, pending []string, err error) {
	var table *string
	if err := db.NewRaw("SELECT to_regclass(?)::text", migrationsTable).Scan(ctx, &table); err != nil {
		return nil, nil, interpretError("look up migration table", err)
	}
	if table == nil {
		for _, mig := range migrations.Migrations.Sorted() {
			pending = append(pending, mig.String())
		}
		return nil, pending, nil
	}
	ms, err := newMigrator(db).MigrationsWithStatus(ctx)
	if err != nil {
		return nil, nil, interpretError("read migration status", err)
	}
	for _, mig := range ms {
		if mig.IsApplied() {
			applied = append(applied, mig.String())
		} else {
			pending = append(pending, mig.String())
		}
	}
	return applied, pending, nil
}

// PendingMigrations lists the migrations not yet applied to db. A server
// should refuse to start while it is not empty: its queries assume the
// latest schema.
func PendingMigrations(ctx context.Context, db *bun.DB) ([]string, error) {
	_, pending, err := MigrationStatus(ctx, db)
	return pending, err
}
