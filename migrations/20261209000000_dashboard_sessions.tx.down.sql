-- Back to the schema before the dashboard's sessions.
DROP TABLE dashboard_sessions;
