-- Back to counting the figures and the task counts at each request.
CREATE INDEX invoices_failed_at ON invoices (merchant_id, first_failed_at)
	INCLUDE (currency, amount_due, decline_code)
	WHERE first_failed_at IS NOT NULL;

--bun:split

CREATE INDEX invoices_recovered_at ON invoices (merchant_id, closed_at)
	INCLUDE (currency, paid_amount, decline_code, recovered_by)
	WHERE status = 'paid' AND recovered_by <> '';

--bun:split

DROP TRIGGER tasks_count_truncate ON tasks;

--bun:split

DROP FUNCTION clear_task_counts();

--bun:split

DROP TRIGGER invoices_figures_truncate ON invoices;

--bun:split

DROP FUNCTION clear_figure_sums();

--bun:split

DROP TRIGGER tasks_count_delete ON tasks;

--bun:split

DROP TRIGGER tasks_count_update ON tasks;

--bun:split

DROP TRIGGER tasks_count_insert ON tasks;

--bun:split

DROP FUNCTION record_task_status_change();

--bun:split

DROP FUNCTION record_inserted_tasks();

--bun:split

DROP TRIGGER invoices_figures_delete ON invoices;

--bun:split

DROP TRIGGER invoices_figures_update ON invoices;

--bun:split

DROP TRIGGER invoices_figures_insert ON invoices;

--bun:split

DROP FUNCTION record_figure_changes();

--bun:split

DROP TABLE task_count_changes;

--bun:split

DROP TABLE task_counts;

--bun:split

DROP TABLE figure_changes;

--bun:split

DROP TABLE figure_sums;
