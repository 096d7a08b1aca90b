package bench_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * ms
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7 * ms}, 99, 7 * ms},
		{"median of 1..100", hundred, 50, 50 * ms},
		{"p99 of 1..100", hundred, 99, 99 * ms},
		{"p100 is the maximum", hundred, 100, 100 * ms},
		{"tiny p is the minimum", hundred, 0.001, 1 * ms},
		{"p99 of two is the larger", []time.Duration{1 * ms, 2 * ms}, 99, 2 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			is.Equal(percentile(tc.sorted, tc.p), tc.want) // nearest-rank percentile
		})
	}
}

func TestRunParallel(t *testing.T) {
	t.Run("every index once", func(t *testing.T) {
		is := is.New(t)
		const n = 1000
		var seen [n]atomic.Int32
		err := runParallel(8, n, func(i int) error {
			seen[i].Add(1)
			return nil
		})
		is.NoErr(err) // no op failed
		for i := range seen {
			is.Equal(seen[i].Load(), int32(1)) // each index exactly once
		}
	})
	t.Run("first error stops it", func(t *testing.T) {
		is := is.New(t)
		boom := errors.New("boom")
		var ran atomic.Int64
		err := runParallel(4, 1_000_000, func(i int) error {
			ran.Add(1)
			if i == 10 {
				return boom
			}
			return nil
		})
		is.True(errors.Is(err, boom))   // the op's error comes back
		is.True(ran.Load() < 1_000_000) // no new op starts after the error
	})
}

func TestBaselines(t *testing.T) {
	is := is.New(t)
	var bl baselines
	is.Equal(bl.of(2000), 0.0) // no baseline measured yet
	bl.add(1, 10)
	bl.add(2000, 100)
	bl.add(1, 20)
	bl.add(2000, 200)
	is.Equal(bl.of(2000), 150.0) // the mean of the runs of the same size
	is.Equal(bl.of(1), 15.0)     // other sizes kept apart
	is.Equal(bl.of(777), 200.0)  // no run of that size: the last baseline
}
