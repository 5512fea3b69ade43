-- A message's seq counts within its session (1, 2, 3, ...), no longer across every
-- session: one global counter told each user how many messages everyone else had sent.
-- The session row holds its last seq; a trigger takes the next one on every insert,
-- under that row's lock, so two writers to one session never share a number. A message
-- that is not inserted after all (a resent client_msg_id, a second reply to the same
-- message) can leave a gap: seq orders a session's messages, it does not count them.
-- A user message also marks its session updated (the same row, so the same statement).
ALTER TABLE sessions ADD COLUMN last_seq bigint NOT NULL DEFAULT 0;

ALTER TABLE messages ALTER COLUMN seq DROP IDENTITY;
DROP INDEX messages_session_seq;
UPDATE messages m SET seq = numbered.n
FROM (
    SELECT id, row_number() OVER (PARTITION BY session_id ORDER BY seq) AS n FROM messages
) numbered
WHERE m.id = numbered.id AND m.seq IS DISTINCT FROM numbered.n;
UPDATE sessions s SET last_seq = counted.n
FROM (SELECT session_id, max(seq) AS n FROM messages GROUP BY session_id) counted
WHERE s.id = counted.session_id;
ALTER TABLE messages ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX messages_session_seq ON messages (session_id, seq);

CREATE FUNCTION messages_next_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions SET last_seq = last_seq + 1,
        updated_at = CASE WHEN NEW.role = 'user' THEN now() ELSE updated_at END
        WHERE id = NEW.session_id
        RETURNING last_seq INTO NEW.seq;
    IF NEW.seq IS NULL THEN
        RAISE foreign_key_violation USING MESSAGE = 'no session ' || NEW.session_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_seq BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_next_seq();
