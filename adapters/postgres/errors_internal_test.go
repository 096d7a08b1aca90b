package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

func TestInterpretError(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	cases := []struct {
		name string
		err  error
		want error // the domain error, or nil for none
	}{
		{"unique violation", &pgconn.PgError{Code: "23505", ConstraintName: "merchants_stripe_account_id_key"}, domain.ErrConflict},
		{"server shutting down", &pgconn.PgError{Code: "57P01"}, domain.ErrUnavailable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, domain.ErrUnavailable},
		{"too many connections", &pgconn.PgError{Code: "53300"}, domain.ErrUnavailable},
		{"deadlock detected", &pgconn.PgError{Code: "40P01"}, domain.ErrUnavailable},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, domain.ErrUnavailable},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, nil},
		{"check violation", &pgconn.PgError{Code: "23514"}, nil},
		{"connection refused", &pgconn.ConnectError{}, domain.ErrUnavailable},
		{"dial error", fmt.Errorf("wrapped: %w", dialErr), domain.ErrUnavailable},
		{"bad connection", driver.ErrBadConn, domain.ErrUnavailable},
		{"connection done", sql.ErrConnDone, domain.ErrUnavailable},
		{"connection closed", pgconn.ErrConnClosed, domain.ErrUnavailable},
		{"server hung up", io.ErrUnexpectedEOF, domain.ErrUnavailable},
		{"deadline", context.DeadlineExceeded, domain.ErrUnavailable},
		{"no rows", sql.ErrNoRows, nil},
		{"a bug", errors.New("bun: cannot scan"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			is := is.New(t)
			got := interpretError("op", c.err)
			is.True(errors.Is(got, c.err)) // the cause stays reachable
			for _, domainErr := range []error{domain.ErrConflict, domain.ErrUnavailable} {
				is.Equal(errors.Is(got, domainErr), domainErr == c.want) // mapped to the right domain error
			}
		})
	}

	t.Run("cancelled by the caller", func(t *testing.T) {
		is := is.New(t)
		got := interpretError("op", fmt.Errorf("timeout: %w", context.Canceled))
		is.True(errors.Is(got, context.Canceled))       // the caller's own cancellation
		is.True(!errors.Is(got, domain.ErrUnavailable)) // is not an outage
	})
	t.Run("nil", func(t *testing.T) {
		is := is.New(t)
		is.NoErr(interpretError("op", nil)) // nothing to translate
	})
}
