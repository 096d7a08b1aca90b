package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/recoupdev/recoup/domain"
)

// SQLSTATE codes that interpretError tells apart.
const (
	codeUniqueViolation    = "23505"
	codeBadCharacter       = "22021" // character_not_in_repertoire: a NUL in text
	codeUntranslatable     = "22P05" // untranslatable_character
	codeAdminShutdown      = "57P01"
	codeCrashShutdown      = "57P02"
	codeCannotConnectNow   = "57P03"
	codeTooManyConnections = "53300"
	codeDeadlock           = "40P01" // deadlock_detected: PostgreSQL chose this transaction to fail
	codeSerialization      = "40001" // serialization_failure
	classConnection        = "08"    // connection_exception and its subclasses
)

// interpretError translates an error from the database into the domain's
// error model, with op saying what was being done. It is the only place
// that knows pgx's and database/sql's error types.
func interpretError(op string, err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == codeUniqueViolation:
			return fmt.Errorf("%s: %w: %w", op, domain.ErrConflict, err)
		case pgErr.Code == codeBadCharacter, pgErr.Code == codeUntranslatable:
			return fmt.Errorf("%s: %w: text PostgreSQL cannot store (a NUL character): %w", op, domain.ErrInvalid, err)
		case strings.HasPrefix(pgErr.Code, classConnection),
			pgErr.Code == codeAdminShutdown, pgErr.Code == codeCrashShutdown,
			pgErr.Code == codeCannotConnectNow, pgErr.Code == codeTooManyConnections:
			return fmt.Errorf("%s: %w: %w", op, domain.ErrUnavailable, err)
		case pgErr.Code == codeDeadlock, pgErr.Code == codeSerialization:
			// The transaction was rolled back for what others did at the
			// same moment; run again, it goes through.
			return fmt.Errorf("%s: %w: try again: %w", op, domain.ErrUnavailable, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	// The caller gave up: that is its own doing, not an outage.
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if isConnectionFailure(err) {
		return fmt.Errorf("%s: %w: %w", op, domain.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isConnectionFailure reports whether err means the server could not be
// reached or the conversation with it broke off: nothing the caller sent
// can be assumed applied beyond what a committed transaction guarantees.
func isConnectionFailure(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr),
		errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		pgconn.Timeout(err),
		pgconn.SafeToRetry(err):
		return true
	}
	return false
}
