DROP TABLE invoice_recoveries;

--bun:split

DROP TABLE tasks;

--bun:split

DROP TABLE processed_events;

--bun:split

DROP TABLE api_keys;

--bun:split

DROP TABLE merchants;
