-- Character cards imported for a persona: what a card holds beyond a persona definition
-- (personality, scenario, greetings, example messages, post-history instructions, the
-- character book, and any field Personae does not know), kept as the card's `data`
-- object so an export gives it back. One card per persona, replaced on re-import.
CREATE TABLE persona_cards (
    persona_id  uuid PRIMARY KEY REFERENCES personas (id) ON DELETE CASCADE,
    spec        text NOT NULL CHECK (spec IN ('chara_card_v2', 'chara_card_v3')),
    data        jsonb NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
