-- Running sums for the recovery figures and the task counts, so that a
-- large merchant's year is read from a few thousand rows, not counted
-- from its invoices and tasks at each request.
--
-- Writers never update a sum in place: a trigger appends what each change
-- adds or takes away to a *_changes table, which only ever takes inserts
-- (and has no index, which would cost every webhook more than the few
-- seconds of changes a read scans), so concurrent webhooks and workers of
-- one merchant never wait for each other's row. The workers fold the
-- changes into the sums every few seconds (FoldSums in the PostgreSQL
-- adapter), and readers add the sums and the changes not folded yet in
-- one statement: what they read is exact at every moment, folded or not.

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

-- task_counts holds the counts of the tasks that ended (succeeded, failed,
-- cancelled): nearly all of a merchant's tasks, and each changes them once.
-- The pending and running tasks are few, and every claim moves one from
-- one to the other: they are counted from tasks at each read instead.
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

-- record_figure_changes appends what a change of an invoice row takes back
-- (its OLD row's figures) and adds (its NEW row's). An invoice counts as
-- failed on the UTC day of its first failure, under its currency (with
-- its amount due) and its decline code; as recovered once paid after a
-- failure, on the UTC day it closed, under its currency (with the amount
-- paid), its decline code and what recovered it. A side whose figures did
-- not change appends nothing.
CREATE FUNCTION record_figure_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    o invoices;  -- NULL on insert
    n invoices;  -- NULL on delete
    o_day date;
    n_day date;
    o_recovered boolean;
    n_recovered boolean;
BEGIN
    IF TG_OP <> 'INSERT' THEN o := OLD; END IF;
    IF TG_OP <> 'DELETE' THEN n := NEW; END IF;

    o_day := (o.first_failed_at AT TIME ZONE 'UTC')::date;
    n_day := (n.first_failed_at AT TIME ZONE 'UTC')::date;
    IF (o_day, o.currency, o.amount_due, o.decline_code) IS DISTINCT FROM
       (n_day, n.currency, n.amount_due, n.decline_code) THEN
        IF o_day IS NOT NULL THEN
            INSERT INTO figure_changes VALUES
                (o.merchant_id, o_day, 'c', o.currency, -1, -o.amount_due, 0, 0),
                (o.merchant_id, o_day, 'd', o.decline_code, -1, 0, 0, 0);
        END IF;
        IF n_day IS NOT NULL THEN
            INSERT INTO figure_changes VALUES
                (n.merchant_id, n_day, 'c', n.currency, 1, n.amount_due, 0, 0),
                (n.merchant_id, n_day, 'd', n.decline_code, 1, 0, 0, 0);
        END IF;
    END IF;

    o_recovered := COALESCE(o.status = 'paid' AND o.recovered_by <> '', false);
    n_recovered := COALESCE(n.status = 'paid' AND n.recovered_by <> '', false);
    o_day := CASE WHEN o_recovered THEN (o.closed_at AT TIME ZONE 'UTC')::date END;
    n_day := CASE WHEN n_recovered THEN (n.closed_at AT TIME ZONE 'UTC')::date END;
    IF (o_recovered OR n_recovered) AND
       (o_recovered, o_day, o.currency, o.paid_amount, o.decline_code, o.recovered_by) IS DISTINCT FROM
       (n_recovered, n_day, n.currency, n.paid_amount, n.decline_code, n.recovered_by) THEN
        IF o_recovered THEN
            INSERT INTO figure_changes VALUES
                (o.merchant_id, o_day, 'c', o.currency, 0, 0, -1, -o.paid_amount),
                (o.merchant_id, o_day, 'd', o.decline_code, 0, 0, -1, 0),
                (o.merchant_id, o_day, 's', o.recovered_by, 0, 0, -1, 0);
        END IF;
        IF n_recovered THEN
            INSERT INTO figure_changes VALUES
                (n.merchant_id, n_day, 'c', n.currency, 0, 0, 1, n.paid_amount),
                (n.merchant_id, n_day, 'd', n.decline_code, 0, 0, 1, 0),
                (n.merchant_id, n_day, 's', n.recovered_by, 0, 0, 1, 0);
        END IF;
    END IF;
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

-- The counts of ended tasks change with each new task that is already
-- ended (per statement, from its transition table), each task that ends or
-- stops being ended (a retry) and each ended task deleted (per row, and
-- only then: a claim, the busiest write, appends nothing).
CREATE FUNCTION record_inserted_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_count_changes
    SELECT merchant_id, status, count(*) FROM new_tasks WHERE status IN ('succeeded', 'failed', 'cancelled') GROUP BY 1, 2;
    RETURN NULL;
END
$$;

--bun:split

CREATE FUNCTION record_task_status_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('succeeded', 'failed', 'cancelled') THEN
        INSERT INTO task_count_changes VALUES (OLD.merchant_id, OLD.status, -1);
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status IN ('succeeded', 'failed', 'cancelled') THEN
        INSERT INTO task_count_changes VALUES (NEW.merchant_id, NEW.status, 1);
    END IF;
    RETURN NULL;
END
$$;

--bun:split

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION record_inserted_tasks();

--bun:split

CREATE TRIGGER tasks_count_update AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN (OLD.status <> NEW.status AND (OLD.status IN ('succeeded', 'failed', 'cancelled') OR NEW.status IN ('succeeded', 'failed', 'cancelled')))
    EXECUTE FUNCTION record_task_status_change();

--bun:split

CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks FOR EACH ROW
    WHEN (OLD.status IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION record_task_status_change();

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
SELECT merchant_id, day, kind, key, sum(failed_invoices), sum(failed_amount),
    sum(recovered_invoices), sum(recovered_amount)
FROM (
    SELECT i.merchant_id, (i.first_failed_at AT TIME ZONE 'UTC')::date AS day, f.kind, f.key,
        1 AS failed_invoices, f.amount AS failed_amount, 0 AS recovered_invoices, 0 AS recovered_amount
    FROM invoices AS i,
        LATERAL (VALUES ('c'::"char", i.currency, i.amount_due), ('d', i.decline_code, 0)) AS f (kind, key, amount)
    WHERE i.first_failed_at IS NOT NULL
    UNION ALL
    SELECT i.merchant_id, (i.closed_at AT TIME ZONE 'UTC')::date, r.kind, r.key, 0, 0, 1, r.amount
    FROM invoices AS i,
        LATERAL (VALUES ('c'::"char", i.currency, i.paid_amount), ('d', i.decline_code, 0),
            ('s', i.recovered_by, 0)) AS r (kind, key, amount)
    WHERE i.status = 'paid' AND i.recovered_by <> ''
) AS c
GROUP BY 1, 2, 3, 4;

--bun:split

INSERT INTO task_counts SELECT merchant_id, status, count(*) FROM tasks WHERE status IN ('succeeded', 'failed', 'cancelled') GROUP BY 1, 2;

--bun:split

-- The figures no longer read the invoices by day.
DROP INDEX invoices_failed_at;

--bun:split

DROP INDEX invoices_recovered_at;
