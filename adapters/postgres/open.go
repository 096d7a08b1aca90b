package postgres

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Pool settings of Open.
const (
	// minPoolSize keeps enough connections for a burst of concurrent
	// webhook deliveries on a small machine: each one holds a connection
	// for its whole transaction, including while it waits on a duplicate.
	minPoolSize = 16
	// poolMaxConnsParam lets a URL set the pool size, with the name that
	// pgxpool uses for the same purpose.
	poolMaxConnsParam = "pool_max_conns"
	connMaxIdleTime   = 5 * time.Minute
	connMaxLifetime   = time.Hour
	connectTimeout    = 5 * time.Second
)

// Open connects to PostgreSQL at databaseURL (postgres://…) and pings it.
//
// The pool holds up to max(4×GOMAXPROCS, 16) connections, or the number in
// the URL's pool_max_conns parameter. Other URL parameters go to pgx: for
// instance search_path to keep recoup's tables in a schema of their own
// (see the package documentation), or default_query_exec_mode to choose
// how statements are sent. pgx's default, cache_statement, prepares each
// statement once per connection; behind a pooler that hands a session's
// statements to different server connections (PgBouncer in transaction
// mode without max_prepared_statements), set default_query_exec_mode=exec
// or simple_protocol. A server that cannot be reached is
// domain.ErrUnavailable.
func Open(ctx context.Context, databaseURL string) (*bun.DB, error) {
	poolSize, connURL, err := splitPoolSize(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(connURL)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		// Fail fast when the server is down, so the webhook answers 503
		// while Stripe still waits for the answer.
		cfg.ConnectTimeout = connectTimeout
	}

	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(poolSize)
	sqldb.SetMaxIdleConns(poolSize)
	sqldb.SetConnMaxIdleTime(connMaxIdleTime)
	sqldb.SetConnMaxLifetime(connMaxLifetime)

	db := bun.NewDB(sqldb, pgdialect.New())
	if err := New(db).Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// splitPoolSize takes pool_max_conns out of the URL (the server would
// reject it as an unknown run-time parameter) and returns the pool size.
func splitPoolSize(databaseURL string) (int, string, error) {
	size := max(4*runtime.GOMAXPROCS(0), minPoolSize)
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Leave other forms (key=value DSNs) to pgx, which reports errors
		// without echoing the password.
		return size, databaseURL, nil
	}
	q := u.Query()
	if v := q.Get(poolMaxConnsParam); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, "", fmt.Errorf("database URL: %s must be a positive integer, got %q", poolMaxConnsParam, v)
		}
		size = n
		q.Del(poolMaxConnsParam)
		u.RawQuery = q.Encode()
	}
	return size, u.String(), nil
}
