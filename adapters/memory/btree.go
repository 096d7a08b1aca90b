package memory

import "slices"

// btreeMax is how many keys a node holds before it splits. Keys sit side
// by side in a node, so a search reads a few contiguous runs of memory
// where a linked structure would chase a pointer per step.
const btreeMax = 32

// btree is an ordered set (a B+tree): insert, remove and seek cost
// O(log n), and walking on from a position costs O(1) a key. It backs the
// task list (keyset pages) and the worker's due queue. Keys must be unique
// under cmp. It is not safe for concurrent use.
//
// Only leaves hold keys; they are linked both ways for walking. A node
// that loses its last key is unlinked at once, so every leaf but an empty
// root has a key and a walk never crosses an empty leaf. Nodes are not
// merged otherwise: a tree only ever takes the space of its largest size.
//
// A key within the range of the first or the last leaf goes straight into
// it when it has room, with no descent: the task list (newest first) takes
// new tasks at its front, and the due queue takes retries, which fall due
// after every other task, at its back.
type btree[K any] struct {
	cmp        func(a, b K) int
	root       *bnode[K]
	head, tail *bnode[K] // the first and the last leaf
	len        int
}

// bnode is a leaf (kids nil) or an inner node, whose kid i holds the keys
// k with seps[i-1] <= k < seps[i].
type bnode[K any] struct {
	keys       []K // leaves only
	seps       []K // inner nodes only
	kids       []*bnode[K]
	prev, next *bnode[K] // leaves only
}

func newBTree[K any](cmp func(a, b K) int) *btree[K] {
	t := &btree[K]{cmp: cmp}
	t.reset()
	return t
}

// reset makes the tree empty: one empty leaf.
func (t *btree[K]) reset() {
	t.root = &bnode[K]{}
	t.head, t.tail = t.root, t.root
}

// kidFor returns the index of the kid whose range holds k.
func (t *btree[K]) kidFor(n *bnode[K], k K) int {
	lo, hi := 0, len(n.seps)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.cmp(n.seps[m], k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// insert adds k, which must not be stored.
func (t *btree[K]) insert(k K) {
	if t.len > 0 {
		// A key below the first leaf's last key belongs in the first leaf
		// (all of whose range lies below), one above the last leaf's first
		// key in the last leaf.
		if h := t.head; len(h.keys) < btreeMax && t.cmp(k, h.keys[len(h.keys)-1]) < 0 {
			t.insertInLeaf(h, k)
			return
		}
		if l := t.tail; len(l.keys) < btreeMax && t.cmp(k, l.keys[0]) > 0 {
			t.insertInLeaf(l, k)
			return
		}
	}
	sep, right := t.insertInto(t.root, k)
	if right != nil {
		root := &bnode[K]{seps: make([]K, 1, btreeMax), kids: make([]*bnode[K], 2, btreeMax+1)}
		root.seps[0] = sep
		root.kids[0], root.kids[1] = t.root, right
		t.root = root
	}
	t.len++
}

// insertInLeaf adds k to leaf n, which has room and whose range holds k.
func (t *btree[K]) insertInLeaf(n *bnode[K], k K) {
	i, _ := slices.BinarySearchFunc(n.keys, k, t.cmp)
	n.keys = slices.Insert(n.keys, i, k)
	t.len++
}

// insertInto adds k under n and returns the node split off n's right, with
// its first key, when n overflowed.
func (t *btree[K]) insertInto(n *bnode[K], k K) (K, *bnode[K]) {
	var zero K
	if n.kids == nil {
		i, _ := slices.BinarySearchFunc(n.keys, k, t.cmp)
		if n.keys == nil {
			n.keys = make([]K, 0, btreeMax+1)
		}
		n.keys = slices.Insert(n.keys, i, k)
		if len(n.keys) <= btreeMax {
			return zero, nil
		}
		half := len(n.keys) / 2
		right := &bnode[K]{keys: make([]K, len(n.keys)-half, btreeMax+1), prev: n, next: n.next}
		copy(right.keys, n.keys[half:])
		clear(n.keys[half:])
		n.keys = n.keys[:half]
		if n.next != nil {
			n.next.prev = right
		} else {
			t.tail = right
		}
		n.next = right
		return right.keys[0], right
	}
	i := t.kidFor(n, k)
	sep, kid := t.insertInto(n.kids[i], k)
	if kid == nil {
		return zero, nil
	}
	n.seps = slices.Insert(n.seps, i, sep)
	n.kids = slices.Insert(n.kids, i+1, kid)
	if len(n.kids) <= btreeMax {
		return zero, nil
	}
	half := len(n.kids) / 2
	right := &bnode[K]{seps: make([]K, len(n.seps)-half, btreeMax), kids: make([]*bnode[K], len(n.kids)-half, btreeMax+1)}
	up := n.seps[half-1]
	copy(right.seps, n.seps[half:])
	copy(right.kids, n.kids[half:])
	clear(n.seps[half-1:])
	clear(n.kids[half:])
	n.seps, n.kids = n.seps[:half-1], n.kids[:half]
	return up, right
}

// remove takes k out and reports whether it was stored.
func (t *btree[K]) remove(k K) bool {
	found, _ := t.removeFrom(t.root, k)
	if !found {
		return false
	}
	t.len--
	if t.len == 0 {
		t.reset()
		return true
	}
	for len(t.root.kids) == 1 {
		t.root = t.root.kids[0]
	}
	return true
}

// removeFrom takes k out of n's subtree; empty reports that n has no key
// left (and, if a leaf, is already unlinked from its neighbours).
func (t *btree[K]) removeFrom(n *bnode[K], k K) (found, empty bool) {
	if n.kids == nil {
		i, ok := slices.BinarySearchFunc(n.keys, k, t.cmp)
		if !ok {
			return false, false
		}
		n.keys = slices.Delete(n.keys, i, i+1)
		if len(n.keys) > 0 {
			return true, false
		}
		// A neighbour takes the leaf's place at an end of the tree (an
		// emptied tree has none, and remove resets it).
		if n.prev != nil {
			n.prev.next = n.next
		} else {
			t.head = n.next
		}
		if n.next != nil {
			n.next.prev = n.prev
		} else {
			t.tail = n.prev
		}
		n.prev, n.next = nil, nil
		return true, true
	}
	i := t.kidFor(n, k)
	found, empty = t.removeFrom(n.kids[i], k)
	if !empty {
		return found, false
	}
	// Drop the empty kid with the separator on one of its sides; the
	// neighbour's range grows over the gap, which holds no key.
	if i > 0 {
		n.seps = slices.Delete(n.seps, i-1, i)
	} else if len(n.seps) > 0 {
		n.seps = slices.Delete(n.seps, 0, 1)
	}
	n.kids = slices.Delete(n.kids, i, i+1)
	return true, len(n.kids) == 0
}

// bpos is a position in a walk over the keys in order; the zero value is
// past the end.
type bpos[K any] struct {
	leaf *bnode[K]
	i    int
}

func (p bpos[K]) valid() bool { return p.leaf != nil }

func (p bpos[K]) key() K { return p.leaf.keys[p.i] }

// next returns the position of the following key.
func (p bpos[K]) next() bpos[K] {
	if p.i+1 < len(p.leaf.keys) {
		return bpos[K]{p.leaf, p.i + 1}
	}
	if p.leaf.next != nil {
		return bpos[K]{p.leaf.next, 0}
	}
	return bpos[K]{}
}

// first returns the position of the smallest key.
func (t *btree[K]) first() bpos[K] {
	if t.len == 0 {
		return bpos[K]{}
	}
	return bpos[K]{t.head, 0}
}

// after returns the position of the first key that sorts strictly after
// k: where a keyset page that continues from k starts.
func (t *btree[K]) after(k K) bpos[K] {
	n := t.root
	for n.kids != nil {
		n = n.kids[t.kidFor(n, k)]
	}
	lo, hi := 0, len(n.keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.cmp(n.keys[m], k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(n.keys) {
		return bpos[K]{n, lo}
	}
	if n.next != nil {
		return bpos[K]{n.next, 0}
	}
	return bpos[K]{}
}
