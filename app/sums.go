package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/recoupdev/recoup/ports"
)

// DefaultFoldInterval is how often FoldSums folds: the changes a read adds
// up on top of the sums are at most this old, a few seconds of webhooks
// and task runs.
const DefaultFoldInterval = 5 * time.Second

// FoldSums folds the running sums of storage that keeps them
// (ports.SumFolder) at once and then every interval until ctx ends. A
// failed fold is logged, and the next one folds what it left: reads are
// exact either way, only slower.
func FoldSums(ctx context.Context, f ports.SumFolder, interval time.Duration, log *slog.Logger) {
	every(ctx, interval, func() {
		if err := f.FoldSums(ctx); err != nil && ctx.Err() == nil {
			log.LogAttrs(ctx, slog.LevelWarn, "folding running sums", slog.String("error", err.Error()))
		}
	})
}
