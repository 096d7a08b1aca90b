package outbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

var _ ports.WebhookSender = (*Sender)(nil)

// DefaultTimeout bounds one attempt when Config.Timeout is zero: a
// receiver is expected to acknowledge at once and do its work afterwards.
const DefaultTimeout = 10 * time.Second

// UserAgent is what recoup's outbound requests call themselves, so that a
// receiver's logs and firewall can tell them apart.
const UserAgent = "recoup-webhooks/1 (+https://github.com/recoupdev/recoup)"

// drainLimit is how much of an answer's body is read (and thrown away) so
// that the connection can be reused; nothing of it is kept.
const drainLimit = 64 << 10

// Config tunes a Sender.
type Config struct {
	// AllowPrivate (RECOUP_WEBHOOK_ALLOW_PRIVATE) lets endpoints be
	// http:// and reach loopback, private, link-local and other
	// non-public addresses: for development, or for receivers on the
	// deployment's own network. The cloud metadata addresses stay refused.
	AllowPrivate bool
	// Timeout bounds one attempt, from dialing to the end of the answer,
	// and CheckURL's DNS lookup. Zero means DefaultTimeout.
	Timeout time.Duration
}

// Sender posts outbound messages to merchants' endpoints, signed per the
// Standard Webhooks specification, through the network guard described in
// the package documentation. It is safe for concurrent use and reuses
// connections.
type Sender struct {
	allowPrivate bool
	timeout      time.Duration
	client       *http.Client
	// lookup resolves a host for CheckURL.
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// New returns a Sender.
func New(cfg Config) *Sender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	s := &Sender{allowPrivate: cfg.AllowPrivate, timeout: cfg.Timeout, lookup: net.DefaultResolver.LookupNetIP}
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second, Control: s.control}
	s.client = &http.Client{
		Transport: &http.Transport{
			// Never a proxy from the environment: the guard must see the
			// endpoint's address, not the proxy's.
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			ForceAttemptHTTP2:      true,
			TLSHandshakeTimeout:    cfg.Timeout,
			MaxIdleConnsPerHost:    2,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		Timeout: cfg.Timeout,
		// A redirect is the endpoint's answer, recorded as a failed
		// attempt: following it would sign a message for, and send it
		// to, a URL the merchant never registered.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

// CheckURL says whether rawURL may be an endpoint: https (or http with
// AllowPrivate), a host, and every address the host resolves to allowed
// by the guard. A refusal is domain.ErrInvalid with a message for the
// merchant. A lookup that fails for another reason than the name not
// existing (a DNS timeout) is domain.ErrUnavailable: nothing was refused,
// the check could not be made.
func (s *Sender) CheckURL(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return invalid("url is not a valid URL")
	}
	switch {
	case u.Scheme == "https", u.Scheme == "http" && s.allowPrivate:
	case s.allowPrivate:
		return invalid("url must be https or http")
	default:
		return invalid("url must be https")
	}
	host := u.Hostname()
	if host == "" {
		return invalid("url has no host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := refusal(ip, s.allowPrivate); why != "" {
			return invalid("url's host is " + why)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	addrs, err := s.lookup(ctx, "ip", host)
	dnsErr, _ := errors.AsType[*net.DNSError](err)
	switch {
	case err == nil && len(addrs) == 0, dnsErr != nil && dnsErr.IsNotFound:
		return invalid(fmt.Sprintf("url's host %.100q does not resolve", host))
	case err != nil:
		return fmt.Errorf("%w: resolve the url's host: %w", domain.ErrUnavailable, err)
	}
	for _, ip := range addrs {
		if why := refusal(ip, s.allowPrivate); why != "" {
			return invalid(fmt.Sprintf("url's host resolves to %s (%s)", why, ip.Unmap()))
		}
	}
	return nil
}

func invalid(msg string) error { return fmt.Errorf("%w: %s", domain.ErrInvalid, msg) }

// Send posts d.Payload to d.URL once, signed with d.Secret under d.ID and
// at, and returns the answer's status: nil error for a 2xx; for anything
// else an error that says the status (and nothing of the body, which the
// endpoint controls); 0 and an error when no answer came (the guard
// refused the address, the connection failed, the timeout ran out).
// Redirects are not followed.
func (s *Sender) Send(ctx context.Context, d domain.Delivery, at time.Time) (int, error) {
	wh, err := standardwebhooks.NewWebhookRaw(d.Secret)
	if err != nil {
		return 0, fmt.Errorf("sign message %s: %w", d.ID, err)
	}
	signature, err := wh.Sign(string(d.ID), at, d.Payload)
	if err != nil {
		return 0, fmt.Errorf("sign message %s: %w", d.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, fmt.Errorf("endpoint url: %w", err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", UserAgent)
	h.Set(standardwebhooks.HeaderWebhookID, string(d.ID))
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, signature)
	res, err := s.client.Do(req)
	if err != nil {
		return 0, transportError(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, drainLimit))
	code := res.StatusCode
	switch {
	case code >= 200 && code <= 299:
		return code, nil
	case code >= 300 && code <= 399:
		return code, fmt.Errorf("endpoint answered %s: redirects are not followed", statusText(code))
	}
	return code, fmt.Errorf("endpoint answered %s", statusText(code))
}

// statusText is the code and Go's own reason phrase: the one in the
// answer is the endpoint's text, kept out of last_error like its body.
func statusText(code int) string {
	if text := http.StatusText(code); text != "" {
		return strconv.Itoa(code) + " " + text
	}
	return strconv.Itoa(code)
}

// transportError drops the *url.Error around a failed exchange: its text
// repeats the URL, whose query may hold the merchant's own token, into
// last_error and the logs.
func transportError(err error) error {
	ue, ok := errors.AsType[*url.Error](err)
	if !ok {
		return fmt.Errorf("post to endpoint: %w", err)
	}
	if ue.Timeout() {
		return fmt.Errorf("endpoint did not answer in time: %w", ue.Err)
	}
	return fmt.Errorf("post to endpoint: %w", ue.Err)
}
