package dashboard

import (
	"fmt"
	"net/http"

	"github.com/recoupdev/recoup/domain"
	"github.com/recoupdev/recoup/internal/weberr"
)

type tasksData struct {
	Status   domain.TaskStatus // empty: all
	Statuses []domain.TaskStatus
	Tasks    []domain.Task
	// Next is the cursor of the next page; empty on the last one.
	Next string
}

func (d *dashboard) handleTasks(w http.ResponseWriter, r *http.Request, v visitor) {
	q := r.URL.Query()
	f := domain.TaskFilter{Limit: domain.DefaultPageSize}
	switch s := q.Get("status"); s {
	case "", "all":
	default:
		if !domain.TaskStatus(s).Valid() {
			d.fail(w, r, v, weberr.WithMessage(domain.ErrInvalid, fmt.Sprintf("unknown status %.40q", s)))
			return
		}
		f.Status = domain.TaskStatus(s)
	}
	if c := q.Get("cursor"); c != "" {
		after, err := d.cfg.Cursors.DecodeTask(c, v.merchant.ID)
		if err != nil {
			d.fail(w, r, v, weberr.WithMessage(domain.ErrInvalid, "invalid cursor"))
			return
		}
		f.After = &after
	}
	pg, err := d.cfg.Tasks.List(r.Context(), v.merchant, f)
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	data := tasksData{Status: f.Status, Statuses: domain.TaskStatuses, Tasks: pg.Tasks}
	if pg.Next != nil {
		c, err := d.cfg.Cursors.EncodeTask(*pg.Next, v.merchant.ID)
		if err != nil {
			d.fail(w, r, v, err)
			return
		}
		data.Next = c
	}
	d.render(w, r, http.StatusOK, "tasks", page{Title: "Tasks", Nav: "tasks", Flash: flashOf(r), Data: data}, v)
}

// taskID reads the path's task id; a 400 unless it is a UUID.
func taskID(r *http.Request) (domain.TaskID, error) {
	raw := r.PathValue("id")
	id, err := domain.ParseTaskID(raw)
	if len(raw) > 36 || err != nil {
		return "", weberr.WithMessage(domain.ErrInvalid, "invalid task id: must be a UUID")
	}
	return id, nil
}

func (d *dashboard) handleRetry(w http.ResponseWriter, r *http.Request, v visitor) {
	id, err := taskID(r)
	if err == nil {
		_, err = d.cfg.Tasks.Retry(r.Context(), v.merchant, id)
		err = weberr.ExplainTask(err, id, weberr.RetryConflict)
	}
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	if d.cfg.Wake != nil {
		d.cfg.Wake()
	}
	d.redirect(w, r, "/tasks?done=retried")
}

func (d *dashboard) handleDelete(w http.ResponseWriter, r *http.Request, v visitor) {
	id, err := taskID(r)
	if err == nil {
		err = weberr.ExplainTask(d.cfg.Tasks.Delete(r.Context(), v.merchant, id), id, weberr.DeleteConflict)
	}
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	d.redirect(w, r, "/tasks?done=deleted")
}
