package postgres

import (
	"testing"

	"github.com/matryer/is"
)

func TestSplitPoolSize(t *testing.T) {
	is := is.New(t)
	size, u, err := splitPoolSize("postgres://app@db/app?pool_max_conns=7&search_path=recoup")
	is.NoErr(err)
	is.Equal(size, 7)                                       // the URL sets the pool size
	is.Equal(u, "postgres://app@db/app?search_path=recoup") // and pgx never sees the parameter

	size, u, err = splitPoolSize("postgres://app@db/app")
	is.NoErr(err)
	is.True(size >= minPoolSize)         // the default pool is never smaller than the minimum
	is.Equal(u, "postgres://app@db/app") // a URL without the parameter is unchanged

	for _, bad := range []string{"0", "-1", "many"} {
		_, _, err = splitPoolSize("postgres://app@db/app?pool_max_conns=" + bad)
		is.True(err != nil) // a pool size must be a positive integer
	}
}
