package migrations_test

import (
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/migrations"
)

func TestEveryMigrationCanBeUndone(t *testing.T) {
	is := is.New(t)
	sorted := migrations.Migrations.Sorted()
	is.True(len(sorted) > 0) // the SQL files are embedded and discovered
	for _, m := range sorted {
		is.True(m.Up != nil)   // every migration has an up file
		is.True(m.Down != nil) // every migration has a down file
	}
}
