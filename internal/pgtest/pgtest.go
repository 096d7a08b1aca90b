package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/postgres"
)

// DefaultURL is the server tests use when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the test server's URL: TEST_DATABASE_URL, or DefaultURL.
func URL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// adminTimeout bounds each administrative statement so that a hung server
// fails the test instead of stalling it.
const adminTimeout = 30 * time.Second

// NewDatabase creates an empty database recoup_test_<random> on the test
// server and returns its URL; t.Cleanup drops it, closing any connection
// left open. It fails the test if the server cannot be reached.
func NewDatabase(t testing.TB) string {
	t.Helper()
	db := "recoup_test_" + randomSuffix(t)
	u, err := withDatabase(URL(), db)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := pgx.Identifier{db}.Sanitize()
	if err := exec(URL(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(URL(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return u
}

// NewSchema creates an empty schema on the database at databaseURL and
// returns a URL whose connections use it as their search_path, so that
// unqualified table names land in it. t.Cleanup drops it. Creating a
// schema is cheaper than creating a database, for tests that need many
// isolated copies.
func NewSchema(t testing.TB, databaseURL string) string {
	t.Helper()
	schema := "recoup_test_" + randomSuffix(t)
	name := pgx.Identifier{schema}.Sanitize()
	if err := exec(databaseURL, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(databaseURL, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	u := mustParse(t, databaseURL)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open connects to databaseURL as recoup does (postgres.Open: pgx, the
// same pool settings) and closes the pool in t.Cleanup. An unreachable
// server fails the test here.
func Open(t testing.TB, databaseURL string) *bun.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, databaseURL)
	if err != nil {
		t.Fatalf("pgtest: cannot reach PostgreSQL at %s (set TEST_DATABASE_URL or start the server): %v", redacted(databaseURL), err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// NewMigratedDB returns a connection to a fresh database carrying recoup's
// schema at its latest migration.
func NewMigratedDB(t testing.TB) *bun.DB {
	t.Helper()
	db := Open(t, NewDatabase(t))
	Migrate(t, db)
	return db
}

// Migrate brings db's schema (the first schema of its search_path) to the
// latest migration.
func Migrate(t testing.TB, db *bun.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := postgres.Migrate(ctx, db); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// exec runs one administrative statement on a connection of its own, so
// that no connection stays open between a test's setup and its cleanup.
func exec(databaseURL, stmt string) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("parse database URL %s: %w", redacted(databaseURL), err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("cannot reach PostgreSQL at %s (set TEST_DATABASE_URL or start the server): %w", redacted(databaseURL), err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

func mustParse(t testing.TB, databaseURL string) *url.URL {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("pgtest: parse database URL: %v", err)
	}
	return u
}

func withDatabase(databaseURL, name string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("TEST_DATABASE_URL must be a postgres:// URL, got scheme %q", u.Scheme)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func redacted(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func randomSuffix(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("pgtest: random name: %v", err)
	}
	return hex.EncodeToString(b[:])
}
