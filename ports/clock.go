package ports

import "time"

// Clock tells the time; tests fix it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
}

// SystemClock is the wall clock, in UTC.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }
