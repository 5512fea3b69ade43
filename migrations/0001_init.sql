-- Personae schema: personas and their traits, beliefs, modes, style and versions;
-- chat sessions and messages; trait observations, metrics and feedback.

CREATE TABLE personas (
    id            uuid PRIMARY KEY,
    slug          text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    description   text NOT NULL DEFAULT '',
    role          text NOT NULL DEFAULT '',
    system_prompt text NOT NULL DEFAULT '',
    domains       text[] NOT NULL DEFAULT '{}',
    is_real       boolean NOT NULL DEFAULT false,
    persona_type  text NOT NULL DEFAULT 'synthetic'
                  CHECK (persona_type IN ('historical', 'fictional', 'synthetic')),
    birth_date    date,
    avatar_url    text,
    version       integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    active        boolean NOT NULL DEFAULT true,
    protected     boolean NOT NULL DEFAULT false,
    search_tsv    tsvector NOT NULL DEFAULT ''::tsvector,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
-- A soft-deleted persona keeps its row (and history); its slug may be reused.
CREATE UNIQUE INDEX personas_slug_live ON personas (slug) WHERE deleted_at IS NULL;
CREATE INDEX personas_domains ON personas USING gin (domains);
CREATE INDEX personas_search ON personas USING gin (search_tsv);
CREATE INDEX personas_type_active ON personas (persona_type, active) WHERE deleted_at IS NULL;

-- persona_id NULL: a core trait inherited by every persona (unless it defines its own).
CREATE TABLE traits (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    persona_id  uuid REFERENCES personas (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,47}$'),
    type        text NOT NULL DEFAULT 'behaviour' CHECK (type ~ '^[a-z][a-z0-9_]{0,47}$'),
    value       double precision NOT NULL CHECK (value >= 0 AND value <= 1),
    inherited   boolean NOT NULL DEFAULT false,
    description text NOT NULL DEFAULT '',
    source      text NOT NULL DEFAULT '',
    evolves     boolean NOT NULL DEFAULT false,
    locked      boolean NOT NULL DEFAULT false,
    CHECK (inherited = (persona_id IS NULL)),
    CHECK (NOT (evolves AND locked))
);
CREATE UNIQUE INDEX traits_persona_name ON traits (persona_id, name) WHERE persona_id IS NOT NULL;
CREATE UNIQUE INDEX traits_core_name ON traits (name) WHERE persona_id IS NULL;

CREATE TABLE beliefs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    persona_id uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    position   integer NOT NULL,
    text       text NOT NULL CHECK (length(text) BETWEEN 1 AND 2000),
    source     text NOT NULL DEFAULT '',
    UNIQUE (persona_id, position)
);

CREATE TABLE modes (
    persona_id uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    position   integer NOT NULL,
    mode       text NOT NULL CHECK (mode ~ '^[a-z][a-z0-9_]{0,47}$'),
    enabled    boolean NOT NULL DEFAULT true,
    PRIMARY KEY (persona_id, mode)
);

CREATE TABLE style_config (
    persona_id      uuid PRIMARY KEY REFERENCES personas (id) ON DELETE CASCADE,
    humour_usage    double precision NOT NULL DEFAULT 0.3 CHECK (humour_usage >= 0 AND humour_usage <= 1),
    emotional_style text NOT NULL DEFAULT 'balanced',
    language_style  text NOT NULL DEFAULT 'conversational',
    voice_enabled   boolean NOT NULL DEFAULT false,
    default_mode    text,
    temperature     double precision NOT NULL DEFAULT 0.7 CHECK (temperature >= 0 AND temperature <= 2),
    max_tokens      integer NOT NULL DEFAULT 512 CHECK (max_tokens BETWEEN 16 AND 8192)
);

CREATE TABLE persona_versions (
    persona_id uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    version    integer NOT NULL CHECK (version >= 1),
    snapshot   jsonb NOT NULL,
    reason     text NOT NULL DEFAULT '',
    created_by text NOT NULL DEFAULT 'system',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (persona_id, version)
);

CREATE TABLE sessions (
    id         uuid PRIMARY KEY,
    user_id    text NOT NULL,
    title      text NOT NULL DEFAULT '',
    policy     text NOT NULL DEFAULT 'mention',
    persona_ids uuid[] NOT NULL,
    metadata   jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    closed_at  timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id, updated_at DESC);

CREATE TABLE messages (
    id               uuid PRIMARY KEY,
    session_id       uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    role             text NOT NULL CHECK (role IN ('user', 'persona', 'system')),
    persona_id       uuid REFERENCES personas (id),
    user_id          text,
    speaker          text NOT NULL,
    text             text NOT NULL,
    client_msg_id    text,
    reply_to         uuid REFERENCES messages (id),
    status           text NOT NULL DEFAULT 'complete'
                     CHECK (status IN ('complete', 'incomplete', 'failed')),
    extracted_traits jsonb NOT NULL DEFAULT '{}',
    timings          jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'persona') = (persona_id IS NOT NULL))
);
CREATE UNIQUE INDEX messages_client_msg ON messages (session_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
CREATE INDEX messages_session_seq ON messages (session_id, seq);
-- one reply per persona to a given user message: a retried turn never answers twice
CREATE UNIQUE INDEX messages_one_reply ON messages (reply_to, persona_id)
    WHERE reply_to IS NOT NULL;

CREATE TABLE trait_observations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    persona_id  uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    session_id  uuid REFERENCES sessions (id) ON DELETE CASCADE,
    message_id  uuid REFERENCES messages (id) ON DELETE CASCADE,
    trait       text NOT NULL,
    value       real NOT NULL CHECK (value >= 0 AND value <= 1),
    method      text NOT NULL,
    confidence  real NOT NULL DEFAULT 1 CHECK (confidence >= 0 AND confidence <= 1),
    observed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trait_observations_persona ON trait_observations (persona_id, trait, observed_at);
CREATE INDEX trait_observations_session ON trait_observations (session_id, persona_id);

CREATE TABLE persona_metrics (
    persona_id  uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    day         date NOT NULL,
    turns       integer NOT NULL DEFAULT 0,
    tokens_out  bigint NOT NULL DEFAULT 0,
    errors      integer NOT NULL DEFAULT 0,
    drift       real,
    PRIMARY KEY (persona_id, day)
);

CREATE TABLE feedback (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    rating     smallint NOT NULL CHECK (rating BETWEEN -1 AND 1),
    comment    text NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, user_id)
);

-- Core traits every persona inherits unless it defines a trait of the same name.
INSERT INTO traits (persona_id, name, type, value, inherited, description, source) VALUES
    (NULL, 'honesty', 'core', 0.9, true,
     'says what it believes to be true and admits uncertainty', 'personae core'),
    (NULL, 'helpfulness', 'core', 0.8, true,
     'tries to leave the user better informed or better off', 'personae core'),
    (NULL, 'respectfulness', 'core', 0.85, true,
     'treats the user with courtesy, even in disagreement', 'personae core'),
    (NULL, 'curiosity', 'core', 0.6, true,
     'asks about what the user means and wants', 'personae core'),
    (NULL, 'safety', 'core', 0.95, true,
     'refuses to help with harm and stays in character without deceiving', 'personae core');
