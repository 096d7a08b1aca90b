package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/recoupdev/recoup/adapters/httpapi"
	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/pgtest"
	"github.com/recoupdev/recoup/migrations"
	"github.com/recoupdev/recoup/ports"
)

// maintenance runs a subcommand on databaseURL with no standard input and
// returns its stdout, its stderr and its exit status.
func maintenance(t *testing.T, databaseURL string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run recoup %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), 0
}

func migrationNames() []string {
	var names []string
	for _, m := range migrations.Migrations.Sorted() {
		names = append(names, m.String())
	}
	return names
}

// TestMigrateUpNamesWhatItApplies: up names each migration it applied, and
// says so when there was nothing to apply.
func TestMigrateUpNamesWhatItApplies(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	out, errOut, status := maintenance(t, url, "migrate", "up")
	if status != 0 {
		t.Fatalf("migrate up: exit %d\n%s", status, errOut)
	}
	names := migrationNames()
	if !strings.HasPrefix(out, "applied "+strconv.Itoa(len(names))+" migration(s):\n") {
		t.Errorf("migrate up printed\n%s\nwant it to begin with the number applied", out)
	}
	for _, n := range names {
		if !strings.Contains(out, "  "+n+"\n") {
			t.Errorf("migrate up does not name %s:\n%s", n, out)
		}
	}
	out, _, status = maintenance(t, url, "migrate", "up")
	if status != 0 || !strings.HasPrefix(out, "nothing to apply") || !strings.Contains(out, "pending: 0") {
		t.Errorf("second migrate up: exit %d\n%s", status, out)
	}
}

// TestMigrateDownNeedsYes: without --yes (and no terminal to ask on) down
// refuses with exit status 2, names what it would drop and changes
// nothing; with --yes it rolls back.
func TestMigrateDownNeedsYes(t *testing.T) {
	t.Parallel()
	url := migratedDatabase(t)
	names := migrationNames()

	out, errOut, status := maintenance(t, url, "migrate", "down")
	if status != 2 {
		t.Errorf("migrate down without --yes: exit %d, want 2\n%s%s", status, out, errOut)
	}
	for _, n := range names {
		if !strings.Contains(errOut, n) {
			t.Errorf("the refusal does not name %s:\n%s", n, errOut)
		}
	}
	for _, want := range []string{"--yes", "tables", "nothing was changed"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, errOut)
		}
	}
	if out != "" {
		t.Errorf("the refusal printed on stdout:\n%s", out)
	}
	status_, _, _ := maintenance(t, url, "migrate", "status")
	if !strings.Contains(status_, "pending: 0") {
		t.Errorf("after the refusal, status says\n%s", status_)
	}
	db := pgtest.Open(t, url)
	var merchants int
	if err := db.NewRaw("SELECT count(*) FROM merchants").Scan(context.Background(), &merchants); err != nil {
		t.Errorf("the merchants table is gone after the refusal: %v", err)
	}

	out, errOut, status = maintenance(t, url, "migrate", "down", "--yes")
	if status != 0 {
		t.Fatalf("migrate down --yes: exit %d\n%s", status, errOut)
	}
	if !strings.HasPrefix(out, "rolled back "+strconv.Itoa(len(names))+" migration(s):\n") || !strings.Contains(out, "applied: 0") {
		t.Errorf("migrate down --yes printed\n%s", out)
	}
	if err := db.NewRaw("SELECT count(*) FROM merchants").Scan(context.Background(), &merchants); err == nil {
		t.Errorf("the merchants table is still there after migrate down --yes")
	}
	out, _, status = maintenance(t, url, "migrate", "down", "--yes")
	if status != 0 || !strings.HasPrefix(out, "nothing to roll back") {
		t.Errorf("migrate down with nothing applied: exit %d\n%s", status, out)
	}
}

// TestMerchantCreateRefusesPendingMigrations: on an empty database merchant
// create says to run the migrations, as serve does, instead of showing SQL.
func TestMerchantCreateRefusesPendingMigrations(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	_, errOut, status := maintenance(t, url, "merchant", "create", "--name", "Acme", "--stripe-account", "acct_1Pending")
	if status != 1 || !strings.Contains(errOut, "run `recoup migrate up` first") {
		t.Errorf("merchant create on an empty database: exit %d\n%s", status, errOut)
	}
	if strings.Contains(errOut, "SQLSTATE") || strings.Contains(errOut, "relation") {
		t.Errorf("merchant create shows SQL:\n%s", errOut)
	}
}

// TestMerchantCreateBoundAccount: a second merchant for one account is
// refused in the admin API's words, on one line, without SQL.
func TestMerchantCreateBoundAccount(t *testing.T) {
	t.Parallel()
	url := migratedDatabase(t)
	if _, errOut, status := maintenance(t, url, "merchant", "create", "--name", "Acme", "--stripe-account", "acct_1Bound"); status != 0 {
		t.Fatalf("merchant create: exit %d\n%s", status, errOut)
	}
	_, errOut, status := maintenance(t, url, "merchant", "create", "--name", "Again", "--stripe-account", "acct_1Bound")
	want := "recoup: " + adminAPIConflict(t, "acct_1Bound") + "\n"
	if status != 1 || errOut != want {
		t.Errorf("second merchant on one account: exit %d, stderr\n%s\nwant exit 1 and %q", status, errOut, want)
	}

	// Bad input: exit 2 with the admin API's 400 message.
	_, errOut, status = maintenance(t, url, "merchant", "create", "--name", "Acme", "--stripe-account", "cus_nope")
	if status != 2 || !strings.Contains(errOut, "stripe_account_id must look like acct_") || strings.Contains(errOut, "create merchant: create merchant") {
		t.Errorf("merchant create with a bad account: exit %d\n%s", status, errOut)
	}
}

// adminAPIConflict is the error the HTTP admin API answers (409) for a
// second merchant on account, whose directory refuses it as the storage
// adapters do.
func adminAPIConflict(t *testing.T, account string) string {
	t.Helper()
	merchants := app.NewMerchantService(boundAccounts{}, ports.SystemClock{})
	api := httpapi.NewAdminAPI(merchants, "admin-token-for-the-comparison", nil)
	req := httptest.NewRequest(http.MethodPost, "/admin/merchants",
		strings.NewReader(`{"name": "Acme", "stripe_account_id": "`+account+`"}`))
	req.Header.Set("Authorization", "Bearer admin-token-for-the-comparison")
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusConflict {
		t.Fatalf("the admin API answered %d %s; want 409", rec.Code, rec.Body)
	}
	return body.Error
}

// boundAccounts is a merchant directory in which every account is bound
// already (its other methods are never called).
type boundAccounts struct{ ports.MerchantDirectory }

func (boundAccounts) CreateMerchant(context.Context, domain.Merchant, domain.APIKey) error {
	return fmt.Errorf("create merchant: %w: stripe account already bound", domain.ErrConflict)
}

// migrate down asks only on a terminal: a pipe, a file, /dev/null or no
// input at all is never one, and down then refuses without --yes.
func TestIsTerminal(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, tc := range []struct {
		name string
		in   io.Reader
	}{{"no input", nil}, {"null device", null}, {"pipe", r}, {"buffer", strings.NewReader("yes\n")}} {
		if isTerminal(tc.in) {
			t.Errorf("%s is taken for a terminal", tc.name)
		}
	}
}
