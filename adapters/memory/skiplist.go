package memory

import "math/rand/v2"

// skipMaxLevel bounds the tower height; with p = 1/4 it is plenty for any
// number of keys that fits in memory.
const skipMaxLevel = 24

// skipList is an ordered set: insert, remove and seek cost O(log n), and
// walking on from a position costs O(1) a key. It backs the task list
// (keyset pages), the worker's due queue and the event retention order.
// Keys must be unique under cmp. It is not safe for concurrent use.
type skipList[K any] struct {
	cmp   func(a, b K) int
	head  skipNode[K]
	level int
}

type skipNode[K any] struct {
	key  K
	next []*skipNode[K]
}

func newSkipList[K any](cmp func(a, b K) int) *skipList[K] {
	l := &skipList[K]{cmp: cmp, level: 1}
	l.head.next = make([]*skipNode[K], skipMaxLevel)
	return l
}

// randomLevel draws a tower height with P(h > k) = 4^-k.
func randomLevel() int {
	lvl := 1
	for r := rand.Uint64(); lvl < skipMaxLevel && r&3 == 0; r >>= 2 {
		lvl++
	}
	return lvl
}

// seek returns the first node whose key is >= k, filling update (if not
// nil) with the last node before k at every level.
func (l *skipList[K]) seek(k K, update *[skipMaxLevel]*skipNode[K]) *skipNode[K] {
	x := &l.head
	for i := l.level - 1; i >= 0; i-- {
		for x.next[i] != nil && l.cmp(x.next[i].key, k) < 0 {
			x = x.next[i]
		}
		if update != nil {
			update[i] = x
		}
	}
	return x.next[0]
}

func (l *skipList[K]) insert(k K) {
	var update [skipMaxLevel]*skipNode[K]
	l.seek(k, &update)
	lvl := randomLevel()
	for ; l.level < lvl; l.level++ {
		update[l.level] = &l.head
	}
	n := &skipNode[K]{key: k, next: make([]*skipNode[K], lvl)}
	for i := range lvl {
		n.next[i] = update[i].next[i]
		update[i].next[i] = n
	}
}

func (l *skipList[K]) remove(k K) bool {
	var update [skipMaxLevel]*skipNode[K]
	x := l.seek(k, &update)
	if x == nil || l.cmp(x.key, k) != 0 {
		return false
	}
	for i := range x.next {
		update[i].next[i] = x.next[i]
	}
	for l.level > 1 && l.head.next[l.level-1] == nil {
		l.level--
	}
	return true
}

// after returns the first node whose key sorts strictly after k: where a
// keyset page that continues from k starts.
func (l *skipList[K]) after(k K) *skipNode[K] {
	x := &l.head
	for i := l.level - 1; i >= 0; i-- {
		for x.next[i] != nil && l.cmp(x.next[i].key, k) <= 0 {
			x = x.next[i]
		}
	}
	return x.next[0]
}

func (l *skipList[K]) first() *skipNode[K] { return l.head.next[0] }
