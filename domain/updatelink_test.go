package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

var linkNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func sampleLink() domain.UpdateLink {
	return domain.UpdateLink{Merchant: "6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c", Customer: "cus_1", Invoice: "in_1",
		Expires: linkNow.Add(domain.UpdateLinkLifetime)}
}

func TestUpdateLink(t *testing.T) {
	keys := domain.LinkKeysFromSecrets([]string{"whsec_current"})
	is := is.New(t)
	tok, err := keys.Sign(sampleLink())
	is.NoErr(err)
	got, err := keys.Parse(tok, linkNow)
	is.NoErr(err)
	is.Equal(got, sampleLink()) // names merchant, customer and invoice

	noInvoice := sampleLink()
	noInvoice.Invoice = ""
	tok2, err := keys.Sign(noInvoice)
	is.NoErr(err)
	got, err = keys.Parse(tok2, linkNow)
	is.NoErr(err)
	is.Equal(got.Invoice, "") // an expiring card's link names no invoice

	_, err = keys.Parse(tok, sampleLink().Expires)
	is.True(errors.Is(err, domain.ErrNotFound)) // expired at its end
	_, err = keys.Parse(tok, linkNow.Add(29*24*time.Hour))
	is.NoErr(err) // and valid until then

	for i := range len(tok) {
		b := []byte(tok)
		b[i] ^= 0x01
		if _, err := keys.Parse(string(b), linkNow); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("a token changed at %d was accepted", i)
		}
	}
	for _, bad := range []string{"", "x", tok[:len(tok)-1], tok + "A", "!!!" + tok} {
		_, err := keys.Parse(bad, linkNow)
		is.True(errors.Is(err, domain.ErrNotFound)) // malformed
	}
	other := domain.LinkKeysFromSecrets([]string{"whsec_other"})
	_, err = other.Parse(tok, linkNow)
	is.True(errors.Is(err, domain.ErrNotFound)) // another deployment's key

	rotated := domain.LinkKeysFromSecrets([]string{"whsec_next", "whsec_current"})
	_, err = rotated.Parse(tok, linkNow)
	is.NoErr(err) // a link from before a rotation, while the old secret is kept
	newer, err := rotated.Sign(sampleLink())
	is.NoErr(err)
	_, err = keys.Parse(newer, linkNow)
	is.True(errors.Is(err, domain.ErrNotFound)) // new links are signed with the new key

	var empty domain.LinkKeys
	_, err = empty.Sign(sampleLink())
	is.True(errors.Is(err, domain.ErrInvalid)) // no key, no link
}

// FuzzUpdateLinkParse: no input makes Parse panic, and whatever it accepts
// is a link that signs back to the same token.
func FuzzUpdateLinkParse(f *testing.F) {
	keys := domain.LinkKeysFromSecrets([]string{"whsec_fuzz"})
	sign := func(k domain.LinkKeys, l domain.UpdateLink) string {
		tok, err := k.Sign(l)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	tok := sign(keys, sampleLink())
	f.Add(tok)
	f.Add("")
	f.Add("AQ")
	f.Add(tok[:20])
	// Seeds near the edges, so that the seed run (make test) checks more
	// than one accepted token: an expiring card's link (no invoice), ids
	// of the longest length, an expired link, one signed with another key
	// and one with a byte of its MAC changed.
	noInvoice := sampleLink()
	noInvoice.Invoice = ""
	f.Add(sign(keys, noInvoice))
	longest := sampleLink()
	longest.Customer, longest.Invoice = "cus_"+strings.Repeat("x", 251), "in_"+strings.Repeat("y", 252)
	f.Add(sign(keys, longest))
	expired := sampleLink()
	expired.Expires = linkNow
	f.Add(sign(keys, expired))
	f.Add(sign(domain.LinkKeysFromSecrets([]string{"whsec_other"}), sampleLink()))
	tampered := []byte(tok)
	i := len(tampered) - 10 // in the MAC
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	f.Add(string(tampered))
	f.Fuzz(func(t *testing.T, token string) {
		l, err := keys.Parse(token, linkNow)
		if err != nil {
			if !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("a bad token is not ErrNotFound: %v", err)
			}
			return
		}
		again, err := keys.Sign(l)
		if err != nil || again != token {
			t.Fatalf("accepted %q, which signs back as %q (%v)", token, again, err)
		}
	})
}
