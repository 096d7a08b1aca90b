package email_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/email"
	"github.com/recoupdev/recoup/domain"
)

func TestParseSMTPURL(t *testing.T) {
	cases := []struct {
		url  string
		want email.SMTPConfig
	}{
		{"smtp://mail.example.com", email.SMTPConfig{Host: "mail.example.com", Port: 587, TLS: email.TLSOpportunistic}},
		{"smtp://bob:s3cret@mail.example.com:2525", email.SMTPConfig{Host: "mail.example.com", Port: 2525, Username: "bob", Password: "s3cret", TLS: email.TLSOpportunistic}},
		{"smtp://mail.example.com?starttls=required", email.SMTPConfig{Host: "mail.example.com", Port: 587, TLS: email.TLSRequired}},
		{"smtp://127.0.0.1:25?starttls=none", email.SMTPConfig{Host: "127.0.0.1", Port: 25, TLS: email.TLSNone}},
		{"smtps://apikey:p%40ss@smtp.example.com", email.SMTPConfig{Host: "smtp.example.com", Port: 465, Username: "apikey", Password: "p@ss", TLS: email.TLSImplicit}},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			is := is.New(t)
			got, err := email.ParseSMTPURL(c.url)
			is.NoErr(err)         // parse
			is.Equal(got, c.want) // config
		})
	}

	for _, bad := range []string{
		"http://user:hunter2@mail.example.com", "smtp://user:hunter2@", "smtp://user:hunter2@host:99999",
		"smtp://user:hunter2@host?starttls=maybe", "smtp://user:hunter2@host:%zz", "mail.example.com",
	} {
		t.Run("bad "+bad, func(t *testing.T) {
			is := is.New(t)
			_, err := email.ParseSMTPURL(bad)
			is.True(errors.Is(err, domain.ErrInvalid))         // rejected
			is.True(!strings.Contains(err.Error(), "hunter2")) // the password is never repeated
			var ue *email.URLError
			is.True(errors.As(err, &ue)) // with a reason for the configuration's error
			is.True(ue.Reason != "")
		})
	}
}

func TestNewSMTPNotifierChecksConfig(t *testing.T) {
	for name, cfg := range map[string]email.SMTPConfig{
		"no host":  {Port: 25, From: "recoup@example.com"},
		"no port":  {Host: "localhost", From: "recoup@example.com"},
		"bad from": {Host: "localhost", Port: 25, From: "not an address"},
		"bad tls":  {Host: "localhost", Port: 25, From: "recoup@example.com", TLS: "sometimes"},
	} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			_, err := email.NewSMTPNotifier(cfg, nil)
			is.True(errors.Is(err, domain.ErrInvalid)) // refused
		})
	}
}

// mailpit is a real SMTP server process with an HTTP API to read back what
// it received.
type mailpit struct {
	smtpPort int
	api      string
}

func mailpitBinary(t *testing.T) string {
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
	t.Fatalf("mailpit not found in PATH or $(go env GOPATH)/bin: install it with `go install github.com/axllent/mailpit@v1.33.1`")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMailpit runs mailpit on free loopback ports with its own database
// and stops it when the test ends.
func startMailpit(t *testing.T, args ...string) mailpit {
	t.Helper()
	bin := mailpitBinary(t)
	m := mailpit{smtpPort: freePort(t)}
	httpPort := freePort(t)
	m.api = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	dir := t.TempDir()
	args = append([]string{
		"--smtp", fmt.Sprintf("127.0.0.1:%d", m.smtpPort), "--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
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
		resp, err := http.Get(m.api + "/api/v1/info")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.smtpPort)); err == nil {
					c.Close()
					return m
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

type mailpitAddress struct {
	Name    string
	Address string
}

type mailpitMessage struct {
	ID        string
	MessageID string
	From      mailpitAddress
	To        []mailpitAddress
	Subject   string
	Text      string
	HTML      string
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

// message waits for the message with this Message-ID and reads it whole.
func (m mailpit) message(t *testing.T, messageID string) mailpitMessage {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var list struct{ Messages []mailpitMessage }
		if err := getJSON(m.api+"/api/v1/messages?limit=500", &list); err != nil {
			t.Fatal(err)
		}
		for _, s := range list.Messages {
			if s.MessageID == messageID {
				var full mailpitMessage
				if err := getJSON(m.api+"/api/v1/message/"+url.PathEscape(s.ID), &full); err != nil {
					t.Fatal(err)
				}
				return full
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s never arrived (%d messages)", messageID, len(list.Messages))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// htpasswd writes a password file with one user, as mailpit reads it.
func htpasswd(t *testing.T, user, password string) string {
	t.Helper()
	sum := sha1.Sum([]byte(password))
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(user+":{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// selfSigned writes a certificate for 127.0.0.1 and returns the files and a
// pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

func TestSMTPNotifierDeliversToMailpit(t *testing.T) {
	certFile, keyFile, roots := selfSigned(t)
	authFile := htpasswd(t, "recoup", "s3cret")
	servers := []struct {
		name   string
		args   []string
		scheme string
		tls    *tls.Config
	}{
		{"auth without tls on loopback", []string{"--smtp-auth-file", authFile, "--smtp-auth-allow-insecure"}, "smtp://recoup:s3cret@127.0.0.1:%d", nil},
		{"auth with starttls", []string{"--smtp-auth-file", authFile, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile},
			"smtp://recoup:s3cret@127.0.0.1:%d", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		{"starttls required", []string{"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls", "--smtp-auth-accept-any"},
			"smtp://user:secret@127.0.0.1:%d?starttls=required", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		{"starttls opportunistic", []string{"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls"},
			"smtp://127.0.0.1:%d", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		{"implicit tls", []string{"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-tls", "--smtp-auth-accept-any"},
			"smtps://user:secret@127.0.0.1:%d", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			mp := startMailpit(t, srv.args...)
			cfg, err := email.ParseSMTPURL(fmt.Sprintf(srv.scheme, mp.smtpPort))
			if err != nil {
				t.Fatal(err)
			}
			cfg.From, cfg.TLSConfig, cfg.Timeout = "billing@recoup.example", srv.tls, 10*time.Second
			notifier, err := email.NewSMTPNotifier(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range []domain.TaskType{domain.TypeNotifyPaymentFailed, domain.TypeNotifyActionRequired, domain.TypeNotifyChargeFailed} {
				t.Run(string(typ), func(t *testing.T) {
					is := is.New(t)
					n := notification(typ)
					want, err := email.NewRenderer()
					is.NoErr(err) // renderer
					rendered, err := want.Render(n)
					is.NoErr(err) // render

					is.NoErr(notifier.Notify(context.Background(), n)) // sent

					got := mp.message(t, email.MessageID(n.IdempotencyKey, "recoup.example"))
					is.Equal(len(got.To), 1)                                             // one recipient
					is.Equal(got.To[0].Address, "jenny@example.com")                     // recipient
					is.Equal(got.From.Address, "billing@recoup.example")                 // sender
					is.Equal(got.From.Name, "Acme Books")                                // merchant as sender name
					is.Equal(got.Subject, rendered.Subject)                              // subject
					is.True(strings.Contains(got.Text, n.HostedInvoiceURL))              // text part has the link
					is.True(strings.Contains(got.HTML, `href="`+n.HostedInvoiceURL+`"`)) // html part links the invoice
					is.True(strings.Contains(got.Text, "$20.00"))                        // amount
				})
			}
		})
	}
}

func TestSMTPNotifierErrors(t *testing.T) {
	t.Run("refused recipient is permanent", func(t *testing.T) {
		is := is.New(t)
		mp := startMailpit(t, "--smtp-allowed-recipients", `@example\.com$`)
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mp.smtpPort, From: "recoup@localhost", Timeout: 10 * time.Second}, nil)
		is.NoErr(err) // notifier
		note := notification(domain.TypeNotifyPaymentFailed)
		note.To = "someone@elsewhere.test"
		err = n.Notify(context.Background(), note)
		is.True(errors.Is(err, domain.ErrInvalid)) // the server's refusal is permanent
	})

	t.Run("wrong password", func(t *testing.T) {
		is := is.New(t)
		mp := startMailpit(t, "--smtp-auth-file", htpasswd(t, "recoup", "s3cret"), "--smtp-auth-allow-insecure")
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mp.smtpPort, Username: "recoup", Password: "wrong",
			From: "recoup@localhost", Timeout: 10 * time.Second}, nil)
		is.NoErr(err) // notifier
		err = n.Notify(context.Background(), notification(domain.TypeNotifyPaymentFailed))
		is.True(err != nil)                              // refused
		is.True(!strings.Contains(err.Error(), "wrong")) // the password is not in the error
	})

	t.Run("server down is retryable", func(t *testing.T) {
		is := is.New(t)
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: freePort(t), From: "recoup@localhost", Timeout: 5 * time.Second}, nil)
		is.NoErr(err) // notifier
		err = n.Notify(context.Background(), notification(domain.TypeNotifyPaymentFailed))
		is.True(err != nil)                         // not sent
		is.True(!errors.Is(err, domain.ErrInvalid)) // may succeed later
	})

	t.Run("starttls required but not offered", func(t *testing.T) {
		is := is.New(t)
		mp := startMailpit(t)
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mp.smtpPort, From: "recoup@localhost", TLS: email.TLSRequired, Timeout: 10 * time.Second}, nil)
		is.NoErr(err) // notifier
		err = n.Notify(context.Background(), notification(domain.TypeNotifyPaymentFailed))
		is.True(err != nil) // refuses to send in the clear
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		is := is.New(t)
		certFile, keyFile, _ := selfSigned(t)
		mp := startMailpit(t, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-tls")
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mp.smtpPort, From: "recoup@localhost", TLS: email.TLSImplicit, Timeout: 10 * time.Second}, nil)
		is.NoErr(err) // notifier
		err = n.Notify(context.Background(), notification(domain.TypeNotifyPaymentFailed))
		is.True(err != nil) // the certificate is verified
	})
}
