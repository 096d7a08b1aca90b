// Package migrations holds recoup's PostgreSQL schema as SQL files, embedded
// in the binary and run by bun's migrate package (see adapters/postgres for
// Migrate, Rollback and the status queries).
//
// Files are named YYYYMMDDHHMMSS_name.tx.up.sql and .tx.down.sql: the
// timestamp orders them and ".tx" makes bun run each file in one
// transaction, so a migration that fails half-way leaves nothing behind.
// Statements are separated by "--bun:split" lines so that each one reaches
// the server on its own, whatever query protocol the connection uses.
//
// Table names are unqualified: the tables go into the first schema of the
// connection's search_path.
package migrations
