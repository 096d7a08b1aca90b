package memory

import "github.com/recoupdev/recoup/domain"

// taskKey is a task id (a UUID) as the two numbers it spells. The indexes
// and the id maps hold keys rather than id strings: comparing and hashing
// them is cheaper, and they hold no pointer, so the garbage collector
// never scans them. Stored ids are canonical (lowercase), so keys order as
// the id strings do, and as PostgreSQL orders its uuid column.
type taskKey struct{ hi, lo uint64 }

// keyOf returns the key of a canonical task id: 36 characters, lowercase
// hex digits with dashes after the 8th, 12th, 16th and 20th. Anything else
// is no stored task's id.
func keyOf(id domain.TaskID) (taskKey, bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return taskKey{}, false
	}
	var k taskKey
	var bad byte
	for _, i := range hexAt[:16] {
		v := hexValue[id[i]]
		bad |= v
		k.hi = k.hi<<4 | uint64(v)
	}
	for _, i := range hexAt[16:] {
		v := hexValue[id[i]]
		bad |= v
		k.lo = k.lo<<4 | uint64(v)
	}
	if bad > 0xf {
		return taskKey{}, false
	}
	return k, true
}

// hexAt lists where a canonical UUID has its 32 hex digits.
var hexAt = [32]uint8{0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35}

// hexValue maps a lowercase hex digit to its value and any other byte to
// 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// lookupKey is keyOf for an id a caller names, in any spelling that
// domain.ParseTaskID accepts (as PostgreSQL's uuid column does): only a
// spelling other than the canonical one pays for parsing.
func lookupKey(id domain.TaskID) (taskKey, bool) {
	if k, ok := keyOf(id); ok {
		return k, true
	}
	canon, err := domain.ParseTaskID(string(id))
	if err != nil {
		return taskKey{}, false
	}
	return keyOf(canon)
}

// mustKeyOf is keyOf for the id of a stored task, which Schedule made
// canonical.
func mustKeyOf(id domain.TaskID) taskKey {
	k, ok := keyOf(id)
	if !ok {
		panic("memory: stored task with a non-canonical id " + string(id))
	}
	return k
}

func cmpKey(a, b taskKey) int {
	switch {
	case a.hi != b.hi:
		if a.hi < b.hi {
			return -1
		}
		return 1
	case a.lo != b.lo:
		if a.lo < b.lo {
			return -1
		}
		return 1
	}
	return 0
}
