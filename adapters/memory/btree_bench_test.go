package memory

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkBTreeListInserts inserts keys as the webhook gives the task
// list: two tasks per event, of one created time and random ids, events
// mostly in time order with some committed out of order.
func BenchmarkBTreeListInserts(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]listKey, 0, 2*b.N)
	for i := range b.N {
		created := int64(i) - int64(r.IntN(4))
		for range 2 {
			keys = append(keys, listKey{created: created, id: taskKey{hi: r.Uint64(), lo: r.Uint64()}})
		}
	}
	tr := newBTree(cmpList)
	b.ResetTimer()
	for _, k := range keys {
		tr.insert(k)
	}
}
