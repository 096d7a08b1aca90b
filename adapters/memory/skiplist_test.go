package memory

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/matryer/is"
)

func TestSkipListKeepsOrder(t *testing.T) {
	is := is.New(t)
	l := newSkipList(cmp.Compare[int])
	var want []int
	for _, k := range rand.Perm(2000) {
		l.insert(k * 2) // even keys, so odd ones fall between
		want = append(want, k*2)
	}
	for _, k := range want[:700] {
		is.True(l.remove(k)) // a stored key is removed
	}
	is.True(!l.remove(want[0])) // a removed key is gone
	is.True(!l.remove(1))       // a key never stored is not found
	want = want[700:]
	slices.Sort(want)

	var got []int
	for n := l.first(); n != nil; n = n.next[0] {
		got = append(got, n.key)
	}
	is.Equal(got, want) // walking from the start gives every key in order

	for _, probe := range []int{-1, 0, 1, 1999, 2000, 3997, 3998, 5000} {
		i, _ := slices.BinarySearch(want, probe+1)
		n := l.after(probe)
		if i == len(want) {
			is.True(n == nil) // nothing after the last key
			continue
		}
		is.Equal(n.key, want[i]) // after(k) is the first key greater than k
	}
}
