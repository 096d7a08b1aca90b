package domain

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Session is a merchant signed in to the dashboard. The browser holds a
// random token (NewSessionToken); storage keeps only its SHA-256, so that
// someone who reads the sessions cannot sign in with them. Sessions are
// stored rather than signed so that signing out ends one at once, on every
// process.
type Session struct {
	TokenHash  SessionHash
	MerchantID MerchantID
	// CSRFToken is what every form of the session must carry back.
	CSRFToken string
	CreatedAt time.Time
	// ExpiresAt is when the session stops working, whatever happens.
	ExpiresAt time.Time
}

// SessionHash is the SHA-256 of a session token.
type SessionHash [sha256.Size]byte

// sessionTokenBytes is how much randomness a session token and a CSRF
// token hold.
const sessionTokenBytes = 32

// NewSessionToken returns a new random session token (32 bytes, base64url)
// and its hash.
func NewSessionToken() (string, SessionHash) {
	token := randomToken()
	return token, HashSessionToken(token)
}

// NewCSRFToken returns a new random CSRF token (32 bytes, base64url).
func NewCSRFToken() string { return randomToken() }

func randomToken() string {
	b := make([]byte, sessionTokenBytes)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashSessionToken returns the hash under which a session token's session
// is stored.
func HashSessionToken(token string) SessionHash { return sha256.Sum256([]byte(token)) }
