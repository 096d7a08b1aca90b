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
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/adapters/email"
	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/mailpittest"
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
			mp := mailpittest.Start(t, srv.args...)
			cfg, err := email.ParseSMTPURL(fmt.Sprintf(srv.scheme, mp.SMTPPort))
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

					got := mp.Message(t, email.MessageID(n.IdempotencyKey, "recoup.example"))
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
		mp := mailpittest.Start(t, "--smtp-allowed-recipients", `@example\.com$`)
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort, From: "recoup@localhost", Timeout: 10 * time.Second}, nil)
		is.NoErr(err) // notifier
		note := notification(domain.TypeNotifyPaymentFailed)
		note.To = "someone@elsewhere.test"
		err = n.Notify(context.Background(), note)
		is.True(errors.Is(err, domain.ErrInvalid)) // the server's refusal is permanent
	})

	t.Run("wrong password", func(t *testing.T) {
		is := is.New(t)
		mp := mailpittest.Start(t, "--smtp-auth-file", htpasswd(t, "recoup", "s3cret"), "--smtp-auth-allow-insecure")
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort, Username: "recoup", Password: "wrong",
			From: "recoup@localhost", Timeout: 10 * time.Second}, nil)
		is.NoErr(err) // notifier
		err = n.Notify(context.Background(), notification(domain.TypeNotifyPaymentFailed))
		is.True(err != nil)                              // refused
		is.True(!strings.Contains(err.Error(), "wrong")) // the password is not in the error
	})

	t.Run("server down is retryable", func(t *testing.T) {
		is := is.New(t)
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mailpittest.FreePort(t), From: "recoup@localhost", Timeout: 5 * time.Second}, nil)
		is.NoErr(err) // notifier
		err = n.Notify(context.Background(), notification(domain.TypeNotifyPaymentFailed))
		is.True(err != nil)                         // not sent
		is.True(!errors.Is(err, domain.ErrInvalid)) // may succeed later
	})

	t.Run("starttls required but not offered", func(t *testing.T) {
		is := is.New(t)
		mp := mailpittest.Start(t)
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort, From: "recoup@localhost", TLS: email.TLSRequired, Timeout: 10 * time.Second}, nil)
		is.NoErr(err) // notifier
		err = n.Notify(context.Background(), notification(domain.TypeNotifyPaymentFailed))
		is.True(err != nil) // refuses to send in the clear
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		is := is.New(t)
		certFile, keyFile, _ := selfSigned(t)
		mp := mailpittest.Start(t, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-tls")
		n, err := email.NewSMTPNotifier(email.SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort, From: "recoup@localhost", TLS: email.TLSImplicit, Timeout: 10 * time.Second}, nil)
		is.NoErr(err) // notifier
		err = n.Notify(context.Background(), notification(domain.TypeNotifyPaymentFailed))
		is.True(err != nil) // the certificate is verified
	})
}
