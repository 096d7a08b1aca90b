// Package mailpittest runs mailpit, a real SMTP server with an HTTP API to
// read back what it received, for tests of any recoup package that send
// email: the SMTP notifier's own, and the end-to-end tests that count
// what customers receive.
package mailpittest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Version is the mailpit release the tests run (the Makefile's
// test-tools installs it).
const Version = "v1.33.1"

// Server is a mailpit process on loopback ports, with a database of its
// own, for the length of a test.
type Server struct {
	SMTPPort int    // where it accepts mail, on 127.0.0.1
	API      string // its HTTP API's base URL
}

// Address is a sender or recipient as mailpit reports it.
type Address struct {
	Name    string
	Address string
}

// Message is a message mailpit received: a summary in a list (Text and
// HTML empty), or the whole message from Server.Message.
type Message struct {
	ID        string // mailpit's own id
	MessageID string // the Message-ID header, without the angle brackets
	From      Address
	To        []Address
	Subject   string
	Text      string // the text/plain part
	HTML      string // the text/html part
}

// binary finds mailpit in PATH or $(go env GOPATH)/bin, or fails the test
// with the command that installs it.
func binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for dir := range strings.SplitSeq(strings.TrimSpace(string(gopath)), string(os.PathListSeparator)) {
			p := filepath.Join(dir, "bin", "mailpit")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatalf("mailpit not found in PATH or $(go env GOPATH)/bin: install it with `go install github.com/axllent/mailpit@%s`", Version)
	return ""
}

// FreePort returns a loopback TCP port nobody listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs mailpit with args added to its own (TLS, authentication…)
// on free loopback ports, waits until it accepts connections, and stops
// it when the test ends.
func Start(t testing.TB, args ...string) Server {
	t.Helper()
	bin := binary(t)
	s := Server{SMTPPort: FreePort(t)}
	httpPort := FreePort(t)
	s.API = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	dir := t.TempDir()
	args = append([]string{
		"--smtp", fmt.Sprintf("127.0.0.1:%d", s.SMTPPort), "--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--database", filepath.Join(dir, "mailpit.db"), "--disable-version-check", "--smtp-disable-rdns", "--quiet",
	}, args...)
	cmd := exec.Command(bin, args...)
	logFile, err := os.Create(filepath.Join(dir, "mailpit.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailpit: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = logFile.Close()
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.API + "/api/v1/info")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.SMTPPort)); err == nil {
					c.Close()
					return s
				}
			}
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logFile.Name())
			t.Fatalf("mailpit exited: %v\n%s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logFile.Name())
			t.Fatalf("mailpit did not become ready\n%s", out)
		}
	}
}

// Messages lists the messages received so far (at most 500), newest
// first, as summaries.
func (s Server) Messages(t testing.TB) []Message {
	t.Helper()
	var list struct{ Messages []Message }
	if err := getJSON(s.API+"/api/v1/messages?limit=500", &list); err != nil {
		t.Fatal(err)
	}
	return list.Messages
}

// Read reads a message of a list whole: its text and HTML parts.
func (s Server) Read(t testing.TB, m Message) Message {
	t.Helper()
	var full Message
	if err := getJSON(s.API+"/api/v1/message/"+url.PathEscape(m.ID), &full); err != nil {
		t.Fatal(err)
	}
	return full
}

// Headers are the message's headers, by name.
func (s Server) Headers(t testing.TB, m Message) map[string][]string {
	t.Helper()
	var h map[string][]string
	if err := getJSON(s.API+"/api/v1/message/"+url.PathEscape(m.ID)+"/headers", &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// Message waits for the message with this Message-ID and reads it whole.
// A message the server accepted is stored, so the wait is short; a
// message that never arrives fails the test after 10 seconds.
func (s Server) Message(t testing.TB, messageID string) Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := s.Messages(t)
		for _, m := range list {
			if m.MessageID == messageID {
				return s.Read(t, m)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s never arrived (%d messages)", messageID, len(list))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
