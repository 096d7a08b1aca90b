-- The dashboard's sessions, under the SHA-256 of their token (the browser
-- holds the token itself). Signing out deletes the row; expired rows are
-- pruned by the expires_at index.
CREATE TABLE dashboard_sessions (
    token_hash  bytea       PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    merchant_id uuid        NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    csrf_token  text        NOT NULL CHECK (csrf_token <> ''),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

--bun:split

CREATE INDEX dashboard_sessions_expires_at ON dashboard_sessions (expires_at);
