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

.PHONY: run build test bench fuzz generate check-generate fmt vet staticcheck vulncheck check tools

## run: start the server on the embedded in-memory storage with development secrets
run:
	$(DEV_ENV) $(GO) run ./cmd/recoup serve

## build: build bin/recoup
build:
	$(GO) build -o bin/recoup ./cmd/recoup

## test: every test, the PostgreSQL suites included (-race)
test: tools
	$(GO) test -race -count=1 ./...

## bench: the benchmarks the README reports
bench: tools
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
	$(GO) test -run '^$$' -fuzz '^FuzzPolicyApply$$'         -fuzztime $(FUZZTIME) ./domain

## generate: regenerate wire_gen.go
generate:
	cd cmd/recoup && $(GOBIN)/wire gen .

## check-generate: fail if wire_gen.go is stale
check-generate: tools
	cd cmd/recoup && $(GOBIN)/wire diff . >/dev/null || (echo "wire_gen.go is stale: run make generate"; exit 1)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck: tools
	$(GOBIN)/staticcheck ./...

## vulncheck: govulncheck against an offline copy of the Go vulnerability database (pinned)
vulncheck:
	bash scripts/vulncheck.sh

## check: formatting, vet, staticcheck, generated code, known vulnerabilities
check: fmt vet staticcheck check-generate vulncheck

## tools: install the pinned tools the tests and checks use
tools:
	@$(GO) install github.com/google/wire/cmd/wire@$(WIRE_VERSION)
	@$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@$(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)
	@$(GO) install github.com/axllent/mailpit@$(MAILPIT_VERSION)
