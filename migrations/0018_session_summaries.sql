-- A summary of each chat session, written in the background once the session goes quiet
-- or ends. The work is derived, not queued: a session needs a summary when it holds a
-- user message and messages newer than its summary (sessions.last_seq > through_seq), and
-- its last message is older than the quiet time or the row is due (due_at: set when the
-- session ends, and when a statement of it was superseded). A claim is a lease like
-- fact_queue's: a crashed worker's claim is taken again once claimed_at is old enough.
-- Writing is idempotent: re-summarising overwrites the row (and the summary memory).
CREATE TABLE session_summaries (
    session_id  uuid PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    summary     text NOT NULL DEFAULT '',
    through_seq bigint NOT NULL DEFAULT 0,
    through_at  timestamptz,
    messages    integer NOT NULL DEFAULT 0,
    origin      text CHECK (origin IN ('llm', 'local')),
    due_at      timestamptz,
    claimed_at  timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_summaries_due ON session_summaries (due_at) WHERE due_at IS NOT NULL;
