package stripe

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

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

// VerifyEvent checks the signature and the timestamp, then decodes the event.
// Every rejection wraps domain.ErrInvalid with a message for the sender;
// none mentions a secret.
func (v *Verifier) VerifyEvent(payload []byte, signatureHeader string) (domain.Event, error) {
	if strings.TrimSpace(signatureHeader) == "" {
		return domain.Event{}, fmt.Errorf("%w: missing Stripe-Signature header", domain.ErrInvalid)
	}
	signedAt, err := signedTimestamp(signatureHeader)
	if err != nil {
		return domain.Event{}, err
	}
	// stripe-go v76 measures only the past, against the wall clock; the
	// check is done here instead, both ways and against the injected clock,
	// and stripe-go checks only the signature.
	if d := v.clock.Now().Sub(signedAt); d > Tolerance || d < -Tolerance {
		return domain.Event{}, fmt.Errorf("%w: timestamp outside the tolerance of %s", domain.ErrInvalid, Tolerance)
	}
	if err := v.checkSignature(payload, signatureHeader); err != nil {
		return domain.Event{}, err
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

// checkSignature accepts a v1 signature of the payload by any of the
// secrets, checked by stripe-go (the timestamp was checked before).
func (v *Verifier) checkSignature(payload []byte, header string) error {
	for _, secret := range v.secrets {
		err := webhook.ValidatePayloadIgnoringTolerance(payload, header, secret)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, webhook.ErrNoValidSignature):
			continue // perhaps signed with another of the secrets
		case errors.Is(err, webhook.ErrInvalidHeader), errors.Is(err, webhook.ErrNotSigned):
			return fmt.Errorf("%w: malformed Stripe-Signature header", domain.ErrInvalid)
		default:
			return fmt.Errorf("%w: signature check: %v", domain.ErrInvalid, err)
		}
	}
	return fmt.Errorf("%w: no valid signature for any configured secret", domain.ErrInvalid)
}

// signedTimestamp reads t= from a header like "t=1495999758,v1=abc,v0=def".
func signedTimestamp(header string) (time.Time, error) {
	for _, pair := range strings.Split(header, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && k == "t" {
			sec, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				break
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: malformed Stripe-Signature header: no valid t= timestamp", domain.ErrInvalid)
}
