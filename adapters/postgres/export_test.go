package postgres

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/migrations"
)

// ListQuery returns the statement and arguments List sends for the filter,
// for BenchmarkTaskList to explain.
func ListQuery(merchant domain.MerchantID, f domain.TaskFilter) (string, []any, error) {
	query, args, _, err := listQuery(merchant, f)
	return query, args, err
}

// MigrateBefore applies, as Migrate does, the migrations older than name
// (a timestamp), so that a test can fill the schema that migration
// changes before Migrate applies the rest.
func MigrateBefore(ctx context.Context, db *bun.DB, name string) error {
	earlier := migrate.NewMigrations()
	for _, m := range migrations.Migrations.Sorted() {
		if m.Name < name {
			earlier.Add(m)
		}
	}
	m := migrate.NewMigrator(db, earlier, migrate.WithTableName(migrationsTable),
		migrate.WithLocksTableName(migrationLocksTable), migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return err
	}
	_, err := m.Migrate(ctx)
	return err
}
