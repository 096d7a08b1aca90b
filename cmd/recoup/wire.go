//go:build wireinject

package main

import (
	"context"
	"log/slog"

	"github.com/google/wire"
)

// The injectors compose recoup.New (coreSet) on the storage the
// configuration names, with the HTTP handlers of the command that runs it:
// one injector per backend and command, over shared sets.

// newMemoryService composes `recoup serve` on the embedded in-memory
// storage.
func newMemoryService(cfg config, log *slog.Logger) (*service, func(), error) {
	wire.Build(coreSet, memorySet, provideServeHandlers)
	return nil, nil, nil
}

// newPostgresService composes `recoup serve` on PostgreSQL.
func newPostgresService(ctx context.Context, cfg config, log *slog.Logger) (*service, func(), error) {
	wire.Build(coreSet, postgresSet, provideServeHandlers)
	return nil, nil, nil
}

// newPostgresWorker composes `recoup worker` on PostgreSQL: the task
// worker alone, with no webhook, so it needs no webhook secret.
func newPostgresWorker(ctx context.Context, cfg config, log *slog.Logger) (*service, func(), error) {
	wire.Build(coreSet, postgresSet, provideWorkerHandlers)
	return nil, nil, nil
}
