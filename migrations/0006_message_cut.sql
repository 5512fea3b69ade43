-- Why a persona's reply was cut short: its token limit ('length'), the reply repeating
-- itself ('repetition') or starting another speaker's line ('speaker'). NULL: the reply
-- ended by itself. A cut reply is stored trimmed to its last sentence boundary.
ALTER TABLE messages
    ADD COLUMN cut text CHECK (cut IN ('length', 'repetition', 'speaker'));
