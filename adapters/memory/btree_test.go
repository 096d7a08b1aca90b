package memory

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/matryer/is"
)

// walk returns the tree's keys in order, as a page walks them.
func walk(t *btree[int]) []int {
	var got []int
	for p := t.first(); p.valid(); p = p.next() {
		got = append(got, p.key())
	}
	return got
}

func TestBTreeKeepsOrder(t *testing.T) {
	is := is.New(t)
	tr := newBTree(cmp.Compare[int])
	var want []int
	for _, k := range rand.Perm(5000) {
		tr.insert(k * 2) // even keys, so odd ones fall between
		want = append(want, k*2)
	}
	for _, k := range want[:1700] {
		is.True(tr.remove(k)) // a stored key is removed
	}
	is.True(!tr.remove(want[0])) // a removed key is gone
	is.True(!tr.remove(1))       // a key never stored is not found
	want = want[1700:]
	slices.Sort(want)
	is.Equal(walk(tr), want)    // walking from the start gives every key in order
	is.Equal(tr.len, len(want)) // the count follows inserts and removes

	for _, probe := range []int{-1, 0, 1, 1999, 2000, 3997, 3998, 9997, 9998, 20000} {
		i, _ := slices.BinarySearch(want, probe+1)
		p := tr.after(probe)
		if i == len(want) {
			is.True(!p.valid()) // nothing after the last key
			continue
		}
		is.Equal(p.key(), want[i]) // after(k) is the first key greater than k
	}
}

// TestBTreeAsQueue drains keys from the front while adding at the back, as
// the due queue does, and empties the tree completely: emptied leaves must
// leave the walk and the tree must work again after being empty.
func TestBTreeAsQueue(t *testing.T) {
	is := is.New(t)
	tr := newBTree(cmp.Compare[int])
	next, head := 0, 0
	for round := range 50 {
		for range 300 + round*7 {
			tr.insert(next)
			next++
		}
		for range 250 {
			p := tr.first()
			is.True(p.valid())          // a key is left
			is.Equal(p.key(), head)     // the smallest key comes first
			is.True(tr.remove(p.key())) // and can be removed
			head++
		}
	}
	got := walk(tr)
	is.Equal(len(got), next-head) // every key not drained is there
	for i, k := range got {
		is.Equal(k, head+i) // in order, with no gaps
	}
	for _, k := range got {
		is.True(tr.remove(k)) // every key can be removed
	}
	is.True(!tr.first().valid())   // an emptied tree walks nothing
	is.True(!tr.after(-1).valid()) // and has nothing after anything
	tr.insert(7)
	tr.insert(3)
	is.Equal(walk(tr), []int{3, 7}) // an emptied tree takes keys again
}

// TestBTreeRandomOps checks the tree against a sorted slice under a random
// mix of inserts, removes (also of absent keys) and seeks.
func TestBTreeRandomOps(t *testing.T) {
	is := is.New(t)
	r := rand.New(rand.NewPCG(1, 2))
	tr := newBTree(cmp.Compare[int])
	var want []int
	for range 40000 {
		k := r.IntN(3000)
		i, found := slices.BinarySearch(want, k)
		switch r.IntN(3) {
		case 0, 1:
			if !found {
				tr.insert(k)
				want = slices.Insert(want, i, k)
			}
		default:
			is.Equal(tr.remove(k), found) // remove reports whether the key was stored
			if found {
				want = slices.Delete(want, i, i+1)
			}
		}
		j, _ := slices.BinarySearch(want, k+1)
		p := tr.after(k)
		is.Equal(p.valid(), j < len(want)) // after(k) finds a key exactly when one is greater
		if p.valid() {
			is.Equal(p.key(), want[j]) // and it is the next greater one
		}
	}
	is.Equal(walk(tr), want) // the walk matches the model
}

// checkEnds fails unless the tree's first and last leaves are the ones a
// descent from the root reaches.
func checkEnds(t *testing.T, tr *btree[int]) {
	t.Helper()
	first, last := tr.root, tr.root
	for first.kids != nil {
		first, last = first.kids[0], last.kids[len(last.kids)-1]
	}
	if tr.head != first || tr.tail != last {
		t.Fatalf("head/tail leaves are not the tree's first/last leaves")
	}
}

// TestBTreeEnds grows the tree at both ends at once, where inserts skip
// the descent (the task list takes new tasks at its front, the due queue
// retries at its back), and shrinks it from both ends and the middle.
func TestBTreeEnds(t *testing.T) {
	is := is.New(t)
	r := rand.New(rand.NewPCG(3, 4))
	tr := newBTree(cmp.Compare[int])
	var want []int
	lo, hi := 0, 1
	for round := range 30 {
		for range 200 + round {
			tr.insert(lo) // before every key
			want = append(want, lo)
			lo--
			tr.insert(hi) // after every key
			want = append(want, hi)
			hi++
		}
		checkEnds(t, tr)
		slices.Sort(want)
		for range 150 {
			var k int
			switch r.IntN(3) {
			case 0:
				k = want[0]
			case 1:
				k = want[len(want)-1]
			default:
				k = want[r.IntN(len(want))]
			}
			is.True(tr.remove(k)) // a stored key is removed
			want = slices.DeleteFunc(want, func(x int) bool { return x == k })
			checkEnds(t, tr)
		}
		is.Equal(walk(tr), want) // the walk holds every key, in order
		is.Equal(tr.len, len(want))
	}
	for _, k := range slices.Clone(want) {
		is.True(tr.remove(k))
	}
	checkEnds(t, tr)
	tr.insert(5)
	tr.insert(9)
	tr.insert(1)
	is.Equal(walk(tr), []int{1, 5, 9}) // an emptied tree takes keys at both ends again
	checkEnds(t, tr)
}
