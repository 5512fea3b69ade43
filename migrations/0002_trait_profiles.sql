-- Observed trait profiles: a persona's running profile overall (session_id NULL) and per
-- session, as TraitStat rows keyed by observed trait name.
CREATE TABLE trait_profiles (
    persona_id uuid NOT NULL REFERENCES personas (id) ON DELETE CASCADE,
    session_id uuid REFERENCES sessions (id) ON DELETE CASCADE,
    stats      jsonb NOT NULL DEFAULT '{}',
    turns      integer NOT NULL DEFAULT 0,
    drift      double precision,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX trait_profiles_overall ON trait_profiles (persona_id) WHERE session_id IS NULL;
CREATE UNIQUE INDEX trait_profiles_session ON trait_profiles (persona_id, session_id)
    WHERE session_id IS NOT NULL;
