-- The persona studio: channel overlays stored (and snapshotted) with the persona, the
-- analyses a persona was generated from, the channel each reply was written for and
-- whether it met the overlay's constraints, feedback reasons and the setting changes
-- they caused.
ALTER TABLE personas ADD COLUMN channels jsonb NOT NULL DEFAULT '[]';

-- One linguistic fingerprint of writing samples (what was measured, on how many words).
CREATE TABLE persona_analyses (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    persona_id  uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    kind        text NOT NULL DEFAULT 'writing',
    samples     integer NOT NULL CHECK (samples >= 1),
    words       integer NOT NULL CHECK (words >= 0),
    confidence  double precision NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    fingerprint jsonb NOT NULL,
    created_by  text NOT NULL DEFAULT 'system',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX persona_analyses_persona ON persona_analyses (persona_id, created_at DESC);

-- The channel a reply was written for and the overlay checks it passed or failed.
CREATE TABLE reply_channels (
    message_id uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    persona_id uuid NOT NULL,
    channel    text NOT NULL,
    compliant  boolean NOT NULL,
    checks     jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reply_channels_persona ON reply_channels (persona_id, created_at);

-- Why a rating was given (too_long, off_character, ...), for the feedback loop.
ALTER TABLE feedback ADD COLUMN reason text
    CHECK (reason IS NULL OR reason ~ '^[a-z][a-z_]{0,39}$');
CREATE INDEX feedback_reason ON feedback (reason, created_at) WHERE reason IS NOT NULL;

-- Each setting change feedback caused: the negative ratings before it no longer count.
CREATE TABLE feedback_actions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    persona_id uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    reason     text NOT NULL,
    version    integer,
    change     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_actions_persona ON feedback_actions (persona_id, reason, created_at DESC);
