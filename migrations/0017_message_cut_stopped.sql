-- A reply the user stopped while it was being written ('stopped', the terminal chat's
-- Ctrl-C) is stored as far as it was shown, marked so.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_cut_check;
ALTER TABLE messages
    ADD CONSTRAINT messages_cut_check
    CHECK (cut IN ('length', 'repetition', 'speaker', 'stopped'));
