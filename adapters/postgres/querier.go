package postgres

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"github.com/uptrace/bun"
)

// querier runs one statement with positional parameters ($1, $2, …). It is
// what database/sql's *DB, *Conn and *Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqlOf returns the database/sql handle beneath db, so that the store's
// statements reach the driver with their parameters apart from the text:
// bun's own methods format the arguments into the SQL, which gives the
// server a new statement to parse and plan on every call. The statements
// skip bun's query hooks on the way.
//
// An IDB of another type (an application's wrapper) keeps going through
// its own methods, with the placeholders rewritten to bun's.
func sqlOf(db bun.IDB) querier {
	switch db := db.(type) {
	case *bun.DB:
		return db.DB
	case bun.Tx:
		return db.Tx
	case *bun.Tx:
		return db.Tx
	case bun.Conn:
		return db.Conn
	case *bun.Conn:
		return db.Conn
	}
	return bunQuerier{db: db}
}

// bunQuerier sends statements through bun's formatter.
type bunQuerier struct {
	db bun.IDB
}

func (q bunQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.db.ExecContext(ctx, bunPlaceholders(query), args...)
}

func (q bunQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.db.QueryContext(ctx, bunPlaceholders(query), args...)
}

func (q bunQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return q.db.QueryRowContext(ctx, bunPlaceholders(query), args...)
}

// bunPlaceholders rewrites PostgreSQL's $1, $2, … as bun's ?0, ?1, …. The
// store's statements have no other dollar sign and no question mark.
func bunPlaceholders(query string) string {
	var b strings.Builder
	b.Grow(len(query))
	for {
		i := strings.IndexByte(query, '$')
		if i < 0 {
			b.WriteString(query)
			return b.String()
		}
		b.WriteString(query[:i])
		query = query[i+1:]
		j := 0
		for j < len(query) && query[j] >= '0' && query[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(query[:j])
		if err != nil || n < 1 {
			b.WriteByte('$') // not a placeholder: leave it to the server
			continue
		}
		b.WriteString("?" + strconv.Itoa(n-1))
		query = query[j:]
	}
}

// queryAll runs a statement and scans every row it returns with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// rowsAffected runs a statement that returns no rows and counts the rows
// it changed.
func rowsAffected(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
