// Package clocktest is a manual clock for tests: it tells the time it was
// set to, and moves only when a test moves it.
package clocktest

import (
	"sync"
	"time"

	"github.com/recoupdev/recoup/ports"
)

// Clock is a ports.Clock that tests move by hand. It is safe for concurrent
// use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

var _ ports.Clock = (*Clock)(nil)

// New returns a clock showing start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
