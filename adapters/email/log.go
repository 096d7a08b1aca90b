package email

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// LogNotifier is the default notifier when no SMTP server is configured:
// it renders each email and writes it to the log at INFO instead of sending
// it, so that an operator sees what would have gone out.
type LogNotifier struct {
	render *Renderer
	log    *slog.Logger
}

var _ ports.Notifier = (*LogNotifier)(nil)

// NewLogNotifier returns a notifier that writes emails to log. A nil logger
// discards.
func NewLogNotifier(log *slog.Logger) *LogNotifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LogNotifier{render: mustRenderer(), log: log}
}

// Notify renders n and logs it with the fields to (the address masked, as
// in every log line), subject, task_id, message_id and the text body. ErrInvalid if n has no recipient or its
// type sends no email.
func (l *LogNotifier) Notify(ctx context.Context, n domain.Notification) error {
	if n.To == "" {
		return fmt.Errorf("%w: notification has no recipient", domain.ErrInvalid)
	}
	msg, err := l.render.Render(n)
	if err != nil {
		return err
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "email (not sent: no SMTP server configured)",
		slog.String("to", domain.MaskEmail(msg.To)), slog.String("subject", msg.Subject),
		slog.String("task_id", string(n.TaskID)), slog.String("message_id", n.IdempotencyKey),
		slog.String("type", string(n.Type)), slog.String("body", msg.Text))
	return nil
}
