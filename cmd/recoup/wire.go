//go:build wireinject

package main

import (
	"context"
	"log/slog"

	"github.com/google/wire"
	"github.com/uptrace/bun"

	"github.com/recoupdev/recoup/adapters/memory"
	"github.com/recoupdev/recoup/adapters/postgres"
	"github.com/recoupdev/recoup/ports"
)

// newMemoryService composes recoup on the embedded in-memory storage.
func newMemoryService(cfg config, log *slog.Logger) (*service, func(), error) {
	wire.Build(serverSet, noSQLPool, memory.New, wire.Bind(new(ports.Storage), new(*memory.Store)))
	return nil, nil, nil
}

// newPostgresService composes recoup on PostgreSQL.
func newPostgresService(ctx context.Context, cfg config, log *slog.Logger) (*service, func(), error) {
	wire.Build(serverSet, postgresSet)
	return nil, nil, nil
}

// newPostgresWorker composes the task worker alone on PostgreSQL: no HTTP,
// so it needs no webhook secret.
func newPostgresWorker(ctx context.Context, cfg config, log *slog.Logger) (*service, func(), error) {
	wire.Build(workerSet, postgresSet, provideWorkerHandler, wire.Struct(new(service), "*"))
	return nil, nil, nil
}

// postgresSet is the PostgreSQL storage.
var postgresSet = wire.NewSet(openPostgres, postgresPool, wire.Bind(new(bun.IDB), new(*bun.DB)),
	postgres.New, wire.Bind(new(ports.Storage), new(*postgres.Store)))
