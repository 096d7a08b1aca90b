DROP INDEX tasks_one_action_notify_per_attempt;

--bun:split

DROP INDEX tasks_one_charge_notify;
