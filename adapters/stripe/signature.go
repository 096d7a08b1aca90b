package stripe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/recoupdev/recoup/domain"
)

// maxSignatureHeader bounds the header that is even looked at: Stripe's is
// a timestamp and one or two signatures, about 150 bytes.
const maxSignatureHeader = 4 << 10

// signatureHeader is a Stripe-Signature header, "t=<unix seconds>,
// v1=<hex HMAC-SHA256>[,v1=…][,v0=…]", read strictly.
//
// The timestamp whose age is checked must be the one the signature covers,
// so the header has exactly one reading: one t, spelt as Stripe writes it,
// and nothing another parser could read differently. A second t, a space,
// a key in capitals, an element without exactly one '=', a non-canonical
// number or a v1 that is not a SHA-256 in hex is refused, not skipped:
// skipping is what let a replay carry a fresh t beside an old signed one.
type signatureHeader struct {
	timestamp  int64
	signatures [][]byte // every v1, decoded
}

func malformedHeader(why string) error {
	return fmt.Errorf("%w: malformed Stripe-Signature header: %s", domain.ErrInvalid, why)
}

// parseSignatureHeader reads h; every refusal is ErrInvalid with a message
// for the sender.
func parseSignatureHeader(h string) (signatureHeader, error) {
	if strings.TrimSpace(h) == "" {
		return signatureHeader{}, fmt.Errorf("%w: missing Stripe-Signature header", domain.ErrInvalid)
	}
	if len(h) > maxSignatureHeader {
		return signatureHeader{}, malformedHeader("too long")
	}
	var sh signatureHeader
	seenT := false
	for element := range strings.SplitSeq(h, ",") {
		key, value, ok := strings.Cut(element, "=")
		if !ok || strings.Contains(value, "=") {
			return signatureHeader{}, malformedHeader("each element must be one key=value")
		}
		if !plainKey(key) {
			return signatureHeader{}, malformedHeader(fmt.Sprintf("key %.20q is not lowercase letters and digits", key))
		}
		switch key {
		case "t":
			if seenT {
				return signatureHeader{}, malformedHeader("more than one t=")
			}
			seenT = true
			ts, err := strconv.ParseInt(value, 10, 64)
			if err != nil || ts <= 0 || strconv.FormatInt(ts, 10) != value {
				return signatureHeader{}, malformedHeader("t= must be a Unix time in seconds")
			}
			sh.timestamp = ts
		case "v1":
			sig, err := hex.DecodeString(value)
			if err != nil || len(sig) != sha256.Size || strings.ToLower(value) != value {
				return signatureHeader{}, malformedHeader("v1= must be a lowercase hex HMAC-SHA256")
			}
			sh.signatures = append(sh.signatures, sig)
		default:
			// Other schemes (v0, Stripe's test scheme, or a future one)
			// are not checked, but must not be able to hide anything.
			if !plainValue(value) {
				return signatureHeader{}, malformedHeader(fmt.Sprintf("value of %s= is not plain", key))
			}
		}
	}
	if !seenT {
		return signatureHeader{}, malformedHeader("no t= timestamp")
	}
	if len(sh.signatures) == 0 {
		return signatureHeader{}, fmt.Errorf("%w: no valid signature for any configured secret", domain.ErrInvalid)
	}
	return sh, nil
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := range len(k) {
		if c := k[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func plainValue(v string) bool {
	if v == "" {
		return false
	}
	for i := range len(v) {
		if c := v[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// signedAt is the header's timestamp.
func (sh signatureHeader) signedAt() time.Time { return time.Unix(sh.timestamp, 0) }

// signedBy reports whether one of the header's v1 signatures is the
// HMAC-SHA256, keyed with secret, of "<t>.<payload>": the very t whose age
// was checked.
func (sh signatureHeader) signedBy(payload []byte, secret string) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	var ts [20]byte
	mac.Write(strconv.AppendInt(ts[:0], sh.timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(payload)
	want := mac.Sum(nil)
	for _, sig := range sh.signatures {
		if hmac.Equal(want, sig) {
			return true
		}
	}
	return false
}
