package domain_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/recoupdev/recoup/domain"
)

func TestNewID(t *testing.T) {
	is := is.New(t)
	seen := map[string]bool{}
	for range 1000 {
		id := domain.NewID()
		u, err := uuid.Parse(id)
		is.NoErr(err)                          // a UUID
		is.Equal(u.Version(), uuid.Version(4)) // random
		is.Equal(u.Variant(), uuid.RFC4122)    // of the standard variant
		canon, err := domain.ParseUUID(id)
		is.NoErr(err)
		is.Equal(canon, id) // in its canonical spelling
		is.True(!seen[id])  // never twice
		seen[id] = true
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = domain.NewID()
	}
}
