package stripetest

import (
	"bufio"
	"debug/buildinfo"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// MockVersion is the stripe-mock release whose spec and fixtures are Stripe
// API 2023-10-16, the version stripe-go v76 pins; later releases serve a
// newer API.
const MockVersion = "v0.180.0"

// TB is the part of testing.TB that StartMock uses. It is spelled out so
// that this package does not import "testing" into a binary that uses its
// event builders (recoup dev send-event).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// StartMock starts a stripe-mock process on a free loopback port for the
// test and returns its base URL (http://127.0.0.1:port); the process is
// stopped when the test ends. The test fails, it is not skipped, when the
// binary is missing or is another release than MockVersion: install it with
// `go install github.com/stripe/stripe-mock@v0.180.0`.
func StartMock(t TB) string {
	t.Helper()
	bin, err := findMock()
	if err != nil {
		t.Fatalf("stripetest: %v", err)
	}
	// Both listeners on loopback with a port of the system's choosing:
	// stripe-mock starts HTTPS on the fixed :12112 unless told otherwise,
	// which would clash between parallel test binaries.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stripetest: stripe-mock stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("stripetest: start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	addr := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		const prefix = "Listening for HTTP at address: "
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				select {
				case addr <- a:
				default:
				}
			}
		}
		// Drain whatever is left so the process never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}()

	select {
	case a := <-addr:
		return "http://" + a
	case <-exited:
		t.Fatalf("stripetest: %s exited before listening", bin)
	case <-time.After(60 * time.Second):
		t.Fatalf("stripetest: %s did not start listening within 60s", bin)
	}
	return ""
}

// findMock looks for stripe-mock in $GOBIN, $GOPATH/bin (default ~/go/bin)
// and then PATH, and checks it was built from MockVersion.
func findMock() (string, error) {
	var candidates []string
	if d := os.Getenv("GOBIN"); d != "" {
		candidates = append(candidates, filepath.Join(d, "stripe-mock"))
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, d := range filepath.SplitList(gopath) {
		candidates = append(candidates, filepath.Join(d, "bin", "stripe-mock"))
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err != nil || st.IsDir() {
			continue
		}
		info, err := buildinfo.ReadFile(c)
		if err != nil {
			return "", errors.New(c + ": cannot read build info: " + err.Error())
		}
		if info.Main.Version != MockVersion {
			return "", errors.New(c + " is stripe-mock " + info.Main.Version + ", want " + MockVersion +
				" (Stripe API 2023-10-16): go install github.com/stripe/stripe-mock@" + MockVersion)
		}
		return c, nil
	}
	return "", errors.New("stripe-mock not found in $GOBIN, $GOPATH/bin or PATH: go install github.com/stripe/stripe-mock@" + MockVersion)
}
