-- What the persona knows about a user: short statements in the third person derived from
-- what the user said, with when each became true and, once a later statement replaced it,
-- when it stopped being true and which fact replaced it. Superseded facts stay as history.
CREATE TABLE user_facts (
    id             uuid PRIMARY KEY,
    persona_id     uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    user_id        text NOT NULL,
    subject        text NOT NULL,
    text           text NOT NULL,
    source_ids     uuid[] NOT NULL DEFAULT '{}',
    origin         text NOT NULL DEFAULT 'said'
                   CHECK (origin IN ('said', 'corrected')),
    valid_from     timestamptz NOT NULL,
    valid_until    timestamptz,
    superseded_by  uuid REFERENCES user_facts (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_facts_current ON user_facts (persona_id, user_id, subject)
    WHERE valid_until IS NULL;
CREATE INDEX user_facts_user ON user_facts (user_id);
-- a message consolidated twice yields one fact per subject
CREATE UNIQUE INDEX user_facts_once ON user_facts (persona_id, user_id, subject, (source_ids[1]))
    WHERE origin = 'said';

-- User messages waiting to be consolidated into facts, written by the statement that
-- stores the message, removed once consolidated. A claim is a lease: work a crashed
-- process had claimed is taken again when the lease runs out.
CREATE TABLE fact_queue (
    message_id  uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    claimed_at  timestamptz,
    attempts    integer NOT NULL DEFAULT 0
);
CREATE INDEX fact_queue_order ON fact_queue (enqueued_at);
