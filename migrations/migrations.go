package migrations

import (
	"embed"
	"fmt"

	"github.com/uptrace/bun/migrate"
)

//go:embed *.sql
var files embed.FS

// Migrations is recoup's schema history, discovered from the embedded SQL
// files. Discovery reads only the embedded files, so it cannot fail at run
// time unless a file is misnamed, which the package's test catches.
var Migrations = discover()

func discover() *migrate.Migrations {
	ms := migrate.NewMigrations()
	if err := ms.Discover(files); err != nil {
		panic(fmt.Sprintf("migrations: embedded SQL files: %v", err))
	}
	return ms
}
