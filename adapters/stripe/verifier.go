package stripe

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// Tolerance is how far a delivery's signed timestamp may be from now, into
// the past or into the future, before it is refused as a possible replay.
const Tolerance = 300 * time.Second

// Verifier checks Stripe-Signature headers and decodes events. It is safe
// for concurrent use.
type Verifier struct {
	secrets []string
	clock   ports.Clock
	log     *slog.Logger
}

var _ ports.WebhookVerifier = (*Verifier)(nil)

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithLogger sets where the Verifier warns about events of another API
// version; nil discards.
func WithLogger(l *slog.Logger) VerifierOption {
	return func(v *Verifier) {
		if l != nil {
			v.log = l
		}
	}
}

// WithClock sets the clock the timestamp tolerance is measured against
// (tests fix it); nil keeps the system clock.
func WithClock(c ports.Clock) VerifierOption {
	return func(v *Verifier) {
		if c != nil {
			v.clock = c
		}
	}
}

// NewVerifier returns a Verifier that accepts a delivery signed with any of
// secrets, so that an endpoint secret can be rotated without downtime.
// Empty entries are ignored; no secret at all is ErrInvalid.
func NewVerifier(secrets []string, opts ...VerifierOption) (*Verifier, error) {
	v := &Verifier{clock: ports.SystemClock{}, log: slog.New(slog.DiscardHandler)}
	for _, s := range secrets {
		if s = strings.TrimSpace(s); s != "" {
			v.secrets = append(v.secrets, s)
		}
	}
	if len(v.secrets) == 0 {
		return nil, fmt.Errorf("%w: no Stripe webhook signing secret configured", domain.ErrInvalid)
	}
	for _, o := range opts {
		o(v)
	}
	return v, nil
}

// CheckHeader reads a Stripe-Signature header strictly and checks its
// timestamp against the tolerance, before the body is read: a delivery
// whose header is missing, malformed or outside the tolerance could never
// be accepted, so its body need not be read at all. Every rejection wraps
// domain.ErrInvalid with a message for the sender.
func (v *Verifier) CheckHeader(signatureHeader string) error {
	_, err := v.readHeader(signatureHeader)
	return err
}

// readHeader parses the header and checks its timestamp.
func (v *Verifier) readHeader(header string) (signatureHeader, error) {
	sh, err := parseSignatureHeader(header)
	if err != nil {
		return signatureHeader{}, err
	}
	// Both ways: a timestamp far in the future is as suspect as an old one.
	if d := v.clock.Now().Sub(sh.signedAt()); d > Tolerance || d < -Tolerance {
		return signatureHeader{}, fmt.Errorf("%w: timestamp outside the tolerance of %s", domain.ErrInvalid, Tolerance)
	}
	return sh, nil
}

// VerifyEvent checks the header (as CheckHeader) and the signature, then
// decodes the event. The signature checked is the one over the header's
// only timestamp, the one whose age was checked. Every rejection wraps
// domain.ErrInvalid with a message for the sender; none mentions a secret.
func (v *Verifier) VerifyEvent(payload []byte, signatureHeader string) (domain.Event, error) {
	sh, err := v.readHeader(signatureHeader)
	if err != nil {
		return domain.Event{}, err
	}
	signed := false
	for _, secret := range v.secrets {
		if sh.signedBy(payload, secret) {
			signed = true
			break
		}
	}
	if !signed {
		return domain.Event{}, fmt.Errorf("%w: no valid signature for any configured secret", domain.ErrInvalid)
	}
	ev, err := decodeEvent(payload)
	if err != nil {
		// The signature matched, so the sender is Stripe (or holds the
		// secret), but the body is not an event recoup can read.
		return domain.Event{}, err
	}
	if ev.APIVersion != stripego.APIVersion {
		v.log.Warn("Stripe event of another API version: decoded as "+stripego.APIVersion+", fields may be missing; set the endpoint's API version to "+stripego.APIVersion,
			"event_id", ev.ID, "event_type", ev.Type, "api_version", ev.APIVersion, "expected_api_version", stripego.APIVersion)
	}
	return ev, nil
}

// Decoder decodes events that recoup read from the Stripe API itself
// (reconciliation), exactly as a webhook delivery's body is decoded after
// its signature. It needs no secret; the zero value is ready to use.
type Decoder struct{}

var _ ports.EventDecoder = Decoder{}

// DecodeEvent decodes an event's JSON body; ErrInvalid as VerifyEvent.
func (Decoder) DecodeEvent(payload []byte) (domain.Event, error) { return decodeEvent(payload) }
