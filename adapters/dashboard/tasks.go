package dashboard

import (
	"fmt"
	"net/http"

	"github.com/recoupdev/recoup/domain"
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
			d.fail(w, r, v, withMessage(domain.ErrInvalid, fmt.Sprintf("unknown status %.40q", s)))
			return
		}
		f.Status = domain.TaskStatus(s)
	}
	if c := q.Get("cursor"); c != "" {
		after, err := d.cfg.Cursors.DecodeTask(c, v.merchant.ID)
		if err != nil {
			d.fail(w, r, v, withMessage(domain.ErrInvalid, "invalid cursor"))
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
		return "", withMessage(domain.ErrInvalid, "invalid task id: must be a UUID")
	}
	return id, nil
}

// explainTaskError gives a task use case's 404 and 409 the task API's
// message.
func explainTaskError(err error, id domain.TaskID, conflict string) error {
	if err == nil {
		return nil
	}
	switch statusOf(err) {
	case http.StatusNotFound:
		return withMessage(err, fmt.Sprintf("task %s not found", id))
	case http.StatusConflict:
		return withMessage(err, fmt.Sprintf("task %s: %s", id, conflict))
	}
	return err
}

func (d *dashboard) handleRetry(w http.ResponseWriter, r *http.Request, v visitor) {
	id, err := taskID(r)
	if err == nil {
		_, err = d.cfg.Tasks.Retry(r.Context(), v.merchant, id)
		err = explainTaskError(err, id, "only a failed or cancelled task can be retried")
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
		err = explainTaskError(d.cfg.Tasks.Delete(r.Context(), v.merchant, id), id, "a running task cannot be deleted")
	}
	if err != nil {
		d.fail(w, r, v, err)
		return
	}
	d.redirect(w, r, "/tasks?done=deleted")
}
