-- A reply's trait observations belong to its message: deleting the message, or the
-- session it is in, deletes them (messages cascade from sessions; a persona that has
-- messages cannot be deleted). Their persona and session columns stay for queries, but
-- are no longer foreign keys checked row by row: each check took a share lock on the
-- persona's row, the row every turn of that persona touches, once per observation.
ALTER TABLE trait_observations DROP CONSTRAINT trait_observations_persona_id_fkey;
ALTER TABLE trait_observations DROP CONSTRAINT trait_observations_session_id_fkey;
DELETE FROM trait_observations WHERE message_id IS NULL;
ALTER TABLE trait_observations ALTER COLUMN message_id SET NOT NULL;
