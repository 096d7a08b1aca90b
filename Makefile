# recoup — every go command runs on go1.27.3 (the machine's own Go may be older
# and carries known standard-library vulnerabilities).
export GOTOOLCHAIN := go1.27.3
GO      ?= go
GOBIN   := $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

# Pinned tool versions (built with the project's toolchain).
WIRE_VERSION        := v0.7.0
STATICCHECK_VERSION := v0.8.2
STRIPE_MOCK_VERSION := v0.180.0
MAILPIT_VERSION     := v1.33.1

# Development settings for `make run` (never use these in production).
DEV_ENV := STRIPE_WEBHOOK_SECRET=whsec_recoup_dev_secret RECOUP_ADMIN_TOKEN=recoup-dev-admin-token-not-for-production RECOUP_LOG_FORMAT=text

# The version stamp of `make build`: `recoup version` prints it. Override
# with `make build VERSION=v1.2.3`; without git, the binary falls back to
# what the go command recorded (see cmd/recoup/version.go).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

INSTALL_TOOL := bash scripts/install-tool.sh

.PHONY: run build docker test test-browser bench fuzz generate check-generate fmt vet staticcheck vulncheck check tools test-tools check-tools

## run: start the server on the embedded in-memory storage with development secrets
# The binary is built first and then replaces the recipe's shell (exec), so
# that Ctrl-C reaches recoup itself, which drains and exits 0; make then ends
# quietly, as any interrupted command does (status 130). Under `go run` the
# go command stood in between and make reported the recipe as failed.
run: build
	@echo "starting bin/recoup serve with development settings (Ctrl-C stops it)"
	@exec env $(DEV_ENV) bin/recoup serve

## build: build bin/recoup, stamped with its version, commit and build date
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/recoup ./cmd/recoup

## docker: build the container image recoup:$(VERSION) (and recoup:latest), stamped like make build
docker:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) \
		-t recoup:$(VERSION) -t recoup:latest .

## test: every test, the PostgreSQL suites included (-race)
test: test-tools
	@echo "go test -race ./... (minutes: about 3 warm, about 15 on empty caches; see the README)"
	@$(GO) test -race -count=1 ./...

# Where make test-browser keeps its screenshots (gitignored), one folder per
# test and adapter under _artifacts/e2e/browser.
BROWSER_ARTIFACTS := artifacts/browser

## test-browser: the dashboard in headless Chromium against recoup serve on both adapters; screenshots in artifacts/browser
test-browser:
	@rm -rf $(BROWSER_ARTIFACTS) && mkdir -p $(BROWSER_ARTIFACTS)
	$(GO) test -tags browser -race -count=1 -artifacts -outputdir $(CURDIR)/$(BROWSER_ARTIFACTS) ./e2e/browser
	@echo "screenshots: $$(find $(BROWSER_ARTIFACTS) -name '*.png' | wc -l) PNG files under $(BROWSER_ARTIFACTS)/_artifacts/e2e/browser"

## bench: the benchmarks the README reports
bench: test-tools
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Fuzzing: `make fuzz` runs every target for FUZZTIME each; `make test` (and
# CI) runs only their seed corpora (f.Add and testdata/fuzz) as ordinary tests.
FUZZTIME ?= 20s

## fuzz: run each fuzz target for FUZZTIME; a failing input is saved under the package's testdata/fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyEvent$$'         -fuzztime $(FUZZTIME) ./adapters/stripe
	$(GO) test -run '^$$' -fuzz '^FuzzVerifiedEvent$$'       -fuzztime $(FUZZTIME) ./adapters/stripe
	$(GO) test -run '^$$' -fuzz '^FuzzVerifiedEventFields$$' -fuzztime $(FUZZTIME) ./adapters/stripe
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeOnePass$$'       -fuzztime $(FUZZTIME) ./adapters/stripe
	$(GO) test -run '^$$' -fuzz '^FuzzWebhookHandler$$'      -fuzztime $(FUZZTIME) ./adapters/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzTaskListCursor$$'      -fuzztime $(FUZZTIME) ./adapters/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzTaskByID$$'            -fuzztime $(FUZZTIME) ./adapters/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzParseTaskID$$'         -fuzztime $(FUZZTIME) ./domain
	$(GO) test -run '^$$' -fuzz '^FuzzDecide$$'              -fuzztime $(FUZZTIME) ./domain
	$(GO) test -run '^$$' -fuzz '^FuzzUpdateLinkParse$$'     -fuzztime $(FUZZTIME) ./domain

## generate: regenerate wire_gen.go
generate: check-tools
	cd cmd/recoup && $(GOBIN)/wire gen .

## check-generate: fail if wire_gen.go is stale
check-generate: check-tools
	cd cmd/recoup && $(GOBIN)/wire diff . >/dev/null || (echo "wire_gen.go is stale: run make generate"; exit 1)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The browser suite builds only with its tag: vet and staticcheck it too.
vet:
	$(GO) vet ./...
	$(GO) vet -tags browser ./e2e/browser

staticcheck: check-tools
	$(GOBIN)/staticcheck ./...
	$(GOBIN)/staticcheck -tags browser ./e2e/browser

## vulncheck: govulncheck against an offline copy of the Go vulnerability database (pinned)
# The second run covers the browser suite's own dependencies (chromedp).
vulncheck:
	bash scripts/vulncheck.sh
	bash scripts/vulncheck.sh -test -tags browser ./e2e/browser

## check: formatting, vet, staticcheck, generated code, known vulnerabilities
check: fmt vet staticcheck check-generate vulncheck

## tools: install every pinned tool (each only when missing or of another version)
tools: test-tools check-tools

# test-tools: what the tests run: stripe-mock (Stripe API 2023-10-16) and mailpit (SMTP).
test-tools:
	@$(INSTALL_TOOL) stripe-mock github.com/stripe/stripe-mock $(STRIPE_MOCK_VERSION)
	@$(INSTALL_TOOL) mailpit github.com/axllent/mailpit $(MAILPIT_VERSION)

# check-tools: what make check runs (govulncheck is scripts/vulncheck.sh's own).
check-tools:
	@$(INSTALL_TOOL) wire github.com/google/wire/cmd/wire $(WIRE_VERSION)
	@$(INSTALL_TOOL) staticcheck honnef.co/go/tools/cmd/staticcheck $(STATICCHECK_VERSION)
