-- Running sums for the recovery figures and the task counts, so that a
-- large merchant's year is read from a few thousand rows, not counted
-- from its invoices and tasks at each request.
--
-- Writers never update a sum in place: a trigger appends what each change
-- adds or takes away to a *_changes table, which only ever takes inserts,
-- so concurrent webhooks and workers of one merchant never wait for each
-- other's row. The workers fold the changes into the sums every few
-- seconds (FoldSums in the PostgreSQL adapter), and readers add the sums
-- and the changes not folded yet in one statement: what they read is
-- exact at every moment, folded or not.

-- figure_sums holds, per merchant and UTC day, the three breakdowns the
-- figures report, apart, which keeps a year to a few thousand rows:
--   kind 'c': by currency (key: the currency), the failed and recovered invoices and amounts;
--   kind 'd': by decline code (key: the code, '' when unknown), the failed and recovered invoices;
--   kind 's': by source (key: what recovered it), the recovered invoices.
-- An invoice counts as failed on the day of its first failure, as
-- recovered on the day it was paid after a failure.
CREATE TABLE figure_sums (
    merchant_id        uuid   NOT NULL,
    day                date   NOT NULL,
    kind               "char" NOT NULL CHECK (kind IN ('c', 'd', 's')),
    key                text   NOT NULL,
    failed_invoices    bigint NOT NULL,
    failed_amount      bigint NOT NULL,
    recovered_invoices bigint NOT NULL,
    recovered_amount   bigint NOT NULL,
    PRIMARY KEY (merchant_id, day, kind, key)
);

--bun:split

CREATE TABLE figure_changes (
    merchant_id        uuid   NOT NULL,
    day                date   NOT NULL,
    kind               "char" NOT NULL,
    key                text   NOT NULL,
    failed_invoices    bigint NOT NULL,
    failed_amount      bigint NOT NULL,
    recovered_invoices bigint NOT NULL,
    recovered_amount   bigint NOT NULL
);

--bun:split

CREATE INDEX figure_changes_merchant ON figure_changes (merchant_id);

--bun:split

CREATE TABLE task_counts (
    merchant_id uuid   NOT NULL,
    status      text   NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (merchant_id, status)
);

--bun:split

CREATE TABLE task_count_changes (
    merchant_id uuid   NOT NULL,
    status      text   NOT NULL,
    n           bigint NOT NULL
);

--bun:split

CREATE INDEX task_count_changes_merchant ON task_count_changes (merchant_id);

--bun:split

-- invoice_figures is what one invoice row adds to the figure sums, times
-- sign; nothing for a NULL row (the OLD of an insert, the NEW of a delete).
CREATE FUNCTION invoice_figures(inv invoices, sign integer)
RETURNS TABLE (merchant_id uuid, day date, kind "char", key text,
    failed_invoices bigint, failed_amount bigint, recovered_invoices bigint, recovered_amount bigint)
LANGUAGE sql IMMUTABLE AS $$
    SELECT inv.merchant_id, (inv.first_failed_at AT TIME ZONE 'UTC')::date, f.kind, f.key, f.n, f.amount, 0, 0
    FROM (VALUES ('c'::"char", inv.currency, sign::bigint, sign * inv.amount_due),
                 ('d'::"char", inv.decline_code, sign::bigint, 0::bigint)) AS f (kind, key, n, amount)
    WHERE inv.first_failed_at IS NOT NULL
    UNION ALL
    SELECT inv.merchant_id, (inv.closed_at AT TIME ZONE 'UTC')::date, r.kind, r.key, 0, 0, r.n, r.amount
    FROM (VALUES ('c'::"char", inv.currency, sign::bigint, sign * inv.paid_amount),
                 ('d'::"char", inv.decline_code, sign::bigint, 0::bigint),
                 ('s'::"char", inv.recovered_by, sign::bigint, 0::bigint)) AS r (kind, key, n, amount)
    WHERE inv.status = 'paid' AND inv.recovered_by <> ''
$$;

--bun:split

CREATE FUNCTION record_figure_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO figure_changes
    SELECT c.merchant_id, c.day, c.kind, c.key, sum(c.failed_invoices), sum(c.failed_amount),
        sum(c.recovered_invoices), sum(c.recovered_amount)
    FROM (SELECT * FROM invoice_figures(NEW, 1) UNION ALL SELECT * FROM invoice_figures(OLD, -1)) AS c
    GROUP BY 1, 2, 3, 4
    HAVING sum(c.failed_invoices) <> 0 OR sum(c.failed_amount) <> 0
        OR sum(c.recovered_invoices) <> 0 OR sum(c.recovered_amount) <> 0;
    RETURN NULL;
END
$$;

--bun:split

-- The triggers fire only for rows whose figures may change: most updates
-- of an invoice (a later attempt, a retry date) change none of them.
CREATE TRIGGER invoices_figures_insert AFTER INSERT ON invoices FOR EACH ROW
    WHEN (NEW.first_failed_at IS NOT NULL OR NEW.status = 'paid')
    EXECUTE FUNCTION record_figure_changes();

--bun:split

CREATE TRIGGER invoices_figures_update AFTER UPDATE ON invoices FOR EACH ROW
    WHEN (OLD.first_failed_at IS DISTINCT FROM NEW.first_failed_at
        OR OLD.closed_at IS DISTINCT FROM NEW.closed_at
        OR OLD.currency <> NEW.currency OR OLD.amount_due <> NEW.amount_due
        OR OLD.decline_code <> NEW.decline_code OR OLD.status <> NEW.status
        OR OLD.paid_amount <> NEW.paid_amount OR OLD.recovered_by <> NEW.recovered_by)
    EXECUTE FUNCTION record_figure_changes();

--bun:split

CREATE TRIGGER invoices_figures_delete AFTER DELETE ON invoices FOR EACH ROW
    WHEN (OLD.first_failed_at IS NOT NULL OR OLD.status = 'paid')
    EXECUTE FUNCTION record_figure_changes();

--bun:split

-- The task counts change per statement, from its transition tables: a
-- claim or a batch of new tasks appends one row per merchant and status.
CREATE FUNCTION record_inserted_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_count_changes SELECT merchant_id, status, count(*) FROM new_tasks GROUP BY 1, 2;
    RETURN NULL;
END
$$;

--bun:split

CREATE FUNCTION record_updated_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_count_changes
    SELECT merchant_id, status, sum(n)
    FROM (SELECT merchant_id, status, 1 AS n FROM new_tasks
          UNION ALL SELECT merchant_id, status, -1 FROM old_tasks) AS c
    GROUP BY 1, 2 HAVING sum(n) <> 0;
    RETURN NULL;
END
$$;

--bun:split

CREATE FUNCTION record_deleted_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_count_changes SELECT merchant_id, status, -count(*) FROM old_tasks GROUP BY 1, 2;
    RETURN NULL;
END
$$;

--bun:split

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION record_inserted_tasks();

--bun:split

CREATE TRIGGER tasks_count_update AFTER UPDATE ON tasks REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION record_updated_tasks();

--bun:split

CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION record_deleted_tasks();

--bun:split

-- TRUNCATE fires no row trigger: it empties the sums with the table.
CREATE FUNCTION clear_figure_sums() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM figure_changes;
    DELETE FROM figure_sums;
    RETURN NULL;
END
$$;

--bun:split

CREATE TRIGGER invoices_figures_truncate AFTER TRUNCATE ON invoices
    FOR EACH STATEMENT EXECUTE FUNCTION clear_figure_sums();

--bun:split

CREATE FUNCTION clear_task_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_count_changes;
    DELETE FROM task_counts;
    RETURN NULL;
END
$$;

--bun:split

CREATE TRIGGER tasks_count_truncate AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION clear_task_counts();

--bun:split

-- The sums of what is already there. The triggers exist from here on, in
-- this transaction, which holds the tables until it commits: no change
-- is counted twice or missed.
INSERT INTO figure_sums
SELECT c.merchant_id, c.day, c.kind, c.key, sum(c.failed_invoices), sum(c.failed_amount),
    sum(c.recovered_invoices), sum(c.recovered_amount)
FROM invoices, LATERAL invoice_figures(invoices, 1) AS c
GROUP BY 1, 2, 3, 4;

--bun:split

INSERT INTO task_counts SELECT merchant_id, status, count(*) FROM tasks GROUP BY 1, 2;

--bun:split

-- The figures no longer read the invoices by day.
DROP INDEX invoices_failed_at;

--bun:split

DROP INDEX invoices_recovered_at;
