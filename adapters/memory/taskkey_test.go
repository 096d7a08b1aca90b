package memory

import (
	"cmp"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

func TestKeyOf(t *testing.T) {
	is := is.New(t)
	ids := make([]domain.TaskID, 500)
	for i := range ids {
		ids[i] = domain.TaskID(domain.NewID())
	}
	ids = append(ids, "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "0fffffff-ffff-ffff-ffff-fffffffffff0")
	for _, a := range ids {
		ka, ok := keyOf(a)
		is.True(ok) // a canonical id has a key
		for _, b := range ids[:50] {
			kb, _ := keyOf(b)
			is.Equal(cmpKey(ka, kb), cmp.Compare(a, b)) // keys order as the id strings do
		}
	}
	for _, bad := range []domain.TaskID{
		"", "not-a-uuid", domain.TaskID(strings.ToUpper(string(ids[0]))), "{" + ids[0][1:35] + "}",
		ids[0][:35], ids[0] + "0", "0000000g-0000-0000-0000-000000000000", "00000000x0000-0000-0000-000000000000",
	} {
		_, ok := keyOf(bad)
		is.True(!ok) // anything else is no stored id
	}
}
