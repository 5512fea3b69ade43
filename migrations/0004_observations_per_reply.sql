-- A reply's trait observations are stored as one row per reply (a JSON array), not one
-- row per observation: every reply wrote about seven rows, each into three indexes,
-- into a table Personae itself never reads. That was a third of the statement that
-- records a reply's traits. `trait_observations` stays, as a view with the columns it
-- had except its row id, so queries over single observations keep working.
CREATE TABLE reply_observations (
    message_id   uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    persona_id   uuid NOT NULL,
    session_id   uuid NOT NULL,
    observations jsonb NOT NULL,  -- [{"trait", "value", "method", "confidence"}, ...]
    observed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reply_observations_persona ON reply_observations (persona_id, observed_at);

INSERT INTO reply_observations (message_id, persona_id, session_id, observations, observed_at)
SELECT o.message_id,
       (array_agg(o.persona_id))[1],
       m.session_id,  -- the message's: the observation's own column may be empty
       jsonb_agg(
           jsonb_build_object(
               'trait', o.trait, 'value', o.value, 'method', o.method,
               'confidence', o.confidence
           )
           ORDER BY o.id
       ),
       min(o.observed_at)
FROM trait_observations o
JOIN messages m ON m.id = o.message_id
GROUP BY o.message_id, m.session_id;

DROP TABLE trait_observations;

CREATE VIEW trait_observations AS
SELECT r.persona_id, r.session_id, r.message_id, o.trait, o.value, o.method, o.confidence,
       r.observed_at
FROM reply_observations r
CROSS JOIN LATERAL jsonb_to_recordset(r.observations)
    AS o (trait text, value real, method text, confidence real);
