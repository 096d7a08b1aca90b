package pgtest_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/internal/pgtest"
)

func TestNewDatabaseIsDroppedAfterTheTest(t *testing.T) {
	is := is.New(t)
	var name string
	t.Run("user", func(t *testing.T) {
		is := is.New(t)
		db := pgtest.Open(t, pgtest.NewDatabase(t))
		is.NoErr(db.NewRaw("SELECT current_database()").Scan(context.Background(), &name))
		is.True(strings.HasPrefix(name, "recoup_test_")) // a throwaway database
	})
	admin := pgtest.Open(t, pgtest.URL())
	var n int
	is.NoErr(admin.NewRaw("SELECT count(*) FROM pg_database WHERE datname = ?", name).Scan(context.Background(), &n))
	is.Equal(n, 0) // dropped when the test that made it ended
}

// TestUnreachableServerFails runs a test against a port nobody listens on,
// in a child process, and expects it to fail, not to skip.
func TestUnreachableServerFails(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		pgtest.NewDatabase(t)
		return
	}
	is := is.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	addr := ln.Addr().String()
	is.NoErr(ln.Close()) // the port is now closed

	cmd := exec.Command(os.Args[0], "-test.run=^TestUnreachableServerFails$", "-test.v")
	cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", "TEST_DATABASE_URL=postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=5")
	out, err := cmd.CombinedOutput()
	is.True(err != nil)                                               // the child test failed
	is.True(strings.Contains(string(out), "--- FAIL"))                // as a failure
	is.True(!strings.Contains(string(out), "--- SKIP"))               // not a skip
	is.True(strings.Contains(string(out), "cannot reach PostgreSQL")) // saying why
}
