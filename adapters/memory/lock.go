package memory

import (
	"context"
	"runtime"
	"sync/atomic"
)

// shardLock is a shard's lock, held by one unit of work at a time.
//
// It lets a running goroutine take a free lock ahead of parked waiters,
// as sync.Mutex does, instead of handing it to the next waiter in line: a
// hand-off leaves the shard held by a goroutine that is not running until
// the scheduler gets to it, so every unit of work on a busy merchant would
// also wait out that delay. Unlike sync.Mutex, a wait ends with its
// context.
type shardLock struct {
	held    atomic.Bool
	waiters atomic.Int32
	// wake carries one "released, look again" token to a parked waiter.
	wake chan struct{}
}

func newShardLock() shardLock { return shardLock{wake: make(chan struct{}, 1)} }

// lockSpins is how often a contended lock yields and retries before its
// goroutine parks: the holder's unit of work is short.
const lockSpins = 3

func (l *shardLock) tryLock() bool { return l.held.CompareAndSwap(false, true) }

// lock takes the lock, waiting as long as ctx allows.
func (l *shardLock) lock(ctx context.Context) error {
	if l.tryLock() {
		return nil
	}
	for range lockSpins {
		runtime.Gosched()
		if l.tryLock() {
			return nil
		}
	}
	l.waiters.Add(1)
	defer l.waiters.Add(-1)
	for {
		// Registered as a waiter before this look, so an unlock after it
		// leaves a token.
		if l.tryLock() {
			return nil
		}
		select {
		case <-l.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *shardLock) unlock() {
	l.held.Store(false)
	if l.waiters.Load() > 0 {
		select {
		case l.wake <- struct{}{}:
			// The woken waiter is queued to run next on this goroutine's
			// processor; yield to it, or the shard stays free but
			// untaken for as long as this goroutine goes on running.
			runtime.Gosched()
		default: // a token is already waiting to be taken
		}
	}
}
