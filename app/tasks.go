package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/ports"
)

// TaskService is the tenant task API: every use case takes the merchant,
// and the storage query itself is scoped to it.
type TaskService struct {
	tasks  ports.TenantTaskRepository
	ledger ports.InvoiceLedger
	clock  ports.Clock
}

// NewTaskService returns the tenant task use cases.
func NewTaskService(tasks ports.TenantTaskRepository, ledger ports.InvoiceLedger, clock ports.Clock) *TaskService {
	return &TaskService{tasks: tasks, ledger: ledger, clock: clock}
}

// List returns one page of the merchant's tasks, newest first.
func (s *TaskService) List(ctx context.Context, m domain.Merchant, f domain.TaskFilter) (domain.TaskPage, error) {
	if f.Limit == 0 {
		f.Limit = domain.DefaultPageSize
	}
	if f.Limit < 1 || f.Limit > domain.MaxPageSize {
		return domain.TaskPage{}, fmt.Errorf("%w: limit must be between 1 and %d", domain.ErrInvalid, domain.MaxPageSize)
	}
	if f.Status != "" && !f.Status.Valid() {
		return domain.TaskPage{}, fmt.Errorf("%w: unknown status %q", domain.ErrInvalid, f.Status)
	}
	return s.tasks.List(ctx, m.ID, f)
}

// Get returns the merchant's task: ErrForbidden if another merchant owns it,
// ErrNotFound if there is no such task.
func (s *TaskService) Get(ctx context.Context, m domain.Merchant, id domain.TaskID) (domain.Task, error) {
	t, err := s.tasks.Get(ctx, m.ID, id)
	return t, s.explainMiss(ctx, id, err)
}

// Retry makes the merchant's failed or cancelled task pending, due now.
// ErrConflict from another status; ErrForbidden / ErrNotFound as Get.
func (s *TaskService) Retry(ctx context.Context, m domain.Merchant, id domain.TaskID) (domain.Task, error) {
	t, err := s.tasks.Retry(ctx, m.ID, id, s.clock.Now())
	return t, s.explainMiss(ctx, id, err)
}

// Delete removes the merchant's task. ErrConflict while it runs;
// ErrForbidden / ErrNotFound as Get.
func (s *TaskService) Delete(ctx context.Context, m domain.Merchant, id domain.TaskID) error {
	return s.explainMiss(ctx, id, s.tasks.Delete(ctx, m.ID, id))
}

// Stats returns the merchant's recovery figures: the all-time sums by
// currency and task counts, and the figures of the UTC days from through
// to, both included (domain.RecoveryFigures). A nil to is today, a nil
// from is domain.DefaultStatsDays-1 days before to. ErrInvalid if from or
// to is not a UTC midnight, from is after to, or they span more than
// domain.MaxStatsDays days.
func (s *TaskService) Stats(ctx context.Context, m domain.Merchant, from, to *time.Time) (domain.RecoveryStats, error) {
	days, err := s.statsRange(from, to)
	if err != nil {
		return domain.RecoveryStats{}, err
	}
	byCurrency, err := s.ledger.Recovery(ctx, m.ID)
	if err != nil {
		return domain.RecoveryStats{}, fmt.Errorf("recovery figures: %w", err)
	}
	figures, err := s.ledger.Figures(ctx, m.ID, days)
	if err != nil {
		return domain.RecoveryStats{}, fmt.Errorf("recovery figures from %s to %s: %w", days.From.Format(domain.DateLayout), days.To.Format(domain.DateLayout), err)
	}
	byStatus, err := s.tasks.CountByStatus(ctx, m.ID)
	if err != nil {
		return domain.RecoveryStats{}, fmt.Errorf("task counts: %w", err)
	}
	return domain.RecoveryStats{ByCurrency: byCurrency, TasksByStatus: byStatus, Range: days, Figures: figures}, nil
}

// statsRange fills in the days Stats was not given and checks the span.
func (s *TaskService) statsRange(from, to *time.Time) (domain.DayRange, error) {
	r := domain.DayRange{To: domain.Day(s.clock.Now())}
	if to != nil {
		r.To = to.UTC()
	}
	r.From = r.To.AddDate(0, 0, 1-domain.DefaultStatsDays)
	if from != nil {
		r.From = from.UTC()
	}
	day := func(t time.Time) string { return t.Format(domain.DateLayout) }
	switch {
	case !r.From.Equal(domain.Day(r.From)) || !r.To.Equal(domain.Day(r.To)):
		return r, fmt.Errorf("%w: from and to must be whole UTC days (got %s and %s)", domain.ErrInvalid, r.From.Format(time.RFC3339Nano), r.To.Format(time.RFC3339Nano))
	case r.From.After(r.To):
		return r, fmt.Errorf("%w: from %s is after to %s", domain.ErrInvalid, day(r.From), day(r.To))
	case r.Days() > domain.MaxStatsDays:
		return r, fmt.Errorf("%w: from %s to %s spans more than %d days", domain.ErrInvalid, day(r.From), day(r.To), domain.MaxStatsDays)
	}
	return r, nil
}

// explainMiss turns a scoped miss into ErrForbidden when the task exists for
// another merchant. The scoped query already decided that nothing happens;
// this only chooses the answer.
func (s *TaskService) explainMiss(ctx context.Context, id domain.TaskID, err error) error {
	if !errors.Is(err, domain.ErrNotFound) {
		return err
	}
	exists, xerr := s.tasks.Exists(ctx, id)
	if xerr != nil {
		return fmt.Errorf("task lookup: %w", xerr)
	}
	if exists {
		return domain.ErrForbidden
	}
	return err
}
