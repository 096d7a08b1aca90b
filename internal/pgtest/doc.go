// Package pgtest gives tests a throwaway PostgreSQL database on the shared
// test server: TEST_DATABASE_URL, or the local default. A test that cannot
// reach the server fails; it never skips, so a missing database cannot pass
// for a green run.
package pgtest
