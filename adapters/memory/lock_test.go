package memory

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/matryer/is"
)

func TestShardLockExcludes(t *testing.T) {
	is := is.New(t)
	l := newShardLock()
	const workers, rounds = 8, 2000
	count := 0 // guarded by l; the race detector sees any slip
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				if err := l.lock(context.Background()); err != nil {
					errs <- err
					return
				}
				count++
				l.unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		is.NoErr(err) // a wait without a deadline never fails
	}
	is.Equal(count, workers*rounds) // every increment happened alone
}

// parked waits until n goroutines wait on l's token.
func parked(l *shardLock, n int32) {
	for l.waiters.Load() < n {
		runtime.Gosched()
	}
}

func TestShardLockWakesParkedWaiter(t *testing.T) {
	is := is.New(t)
	l := newShardLock()
	is.True(l.tryLock())  // a free lock is taken at once
	is.True(!l.tryLock()) // a held lock is not
	got := make(chan error, 1)
	go func() { got <- l.lock(t.Context()) }()
	parked(&l, 1)
	l.unlock()
	is.NoErr(<-got)       // the parked waiter is woken and takes the lock
	is.True(!l.tryLock()) // and holds it
	l.unlock()
}

func TestShardLockWaitEndsWithContext(t *testing.T) {
	is := is.New(t)
	l := newShardLock()
	is.True(l.tryLock())
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan error, 1)
	go func() { got <- l.lock(ctx) }()
	parked(&l, 1)
	cancel()
	is.True(errors.Is(<-got, context.Canceled)) // the waiter gives up with its context's error
	is.Equal(l.waiters.Load(), int32(0))        // and is no longer counted
	l.unlock()
	is.NoErr(l.lock(t.Context())) // the lock still works
	l.unlock()
}
