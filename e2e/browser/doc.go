// Package browser holds the end-to-end tests of the merchant dashboard in a
// real headless Chromium: they build the recoup command, start `recoup
// serve` on each storage adapter (memory, PostgreSQL), seed it through the
// admin API and signed Stripe webhooks, then sign in, read, click and type
// as a merchant would, and compare what the pages show with what the API
// answers. Each page visited is saved as a full-page PNG screenshot.
//
// The tests carry the build tag browser, so that `go test ./...` stays
// quick; `make test-browser` runs them and keeps the screenshots under
// artifacts/browser. They need Debian's chromium package (or a chromium
// on PATH) and, for the PostgreSQL run, the test server of internal/pgtest;
// without either they fail rather than skip.
package browser
