package ports

import (
	"context"

	"github.com/recoupdev/recoup/domain"
)

// Notifier sends the customer emails of notify_* tasks.
type Notifier interface {
	// Notify renders and sends n to n.To. An error wrapping
	// domain.ErrInvalid is permanent (no or malformed recipient, a message
	// the server refuses for good): sending again cannot help. Any other
	// error (server unreachable, a temporary refusal, ctx ended) may succeed
	// later.
	Notify(ctx context.Context, n domain.Notification) error
}
