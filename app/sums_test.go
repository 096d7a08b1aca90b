package app_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/app"
	"github.com/recoupdev/recoup/internal/logtest"
)

// folderFunc is a ports.SumFolder made of a function.
type folderFunc func(ctx context.Context) error

func (f folderFunc) FoldSums(ctx context.Context) error { return f(ctx) }

// FoldSums folds at once and then at every interval; a failed fold is
// logged and does not stop the ones after it; it returns when its context
// ends.
func TestFoldSumsFoldsUntilItsContextEnds(t *testing.T) {
	is := is.New(t)
	ctx, stop := context.WithCancel(t.Context())
	var mu sync.Mutex
	calls := 0
	third := make(chan struct{})
	f := folderFunc(func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch calls {
		case 1:
			return errors.New("database is down")
		case 3:
			close(third)
		}
		return nil
	})
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	done := make(chan struct{})
	go func() {
		app.FoldSums(ctx, f, time.Millisecond, log)
		close(done)
	}()
	select {
	case <-third:
	case <-time.After(time.Minute):
		t.Fatal("FoldSums did not fold again after a failed fold")
	}
	stop()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("FoldSums did not return when its context ended")
	}
	is.True(strings.Contains(logs.String(), "database is down")) // the failed fold is logged
	is.Equal(strings.Count(logs.String(), "level=WARN"), 1)      // once
}
