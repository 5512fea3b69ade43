-- Which persona versions an import wrote (`personae personas import`, the shipped library
-- or a character card). Importing again replaces a persona only while its current version
-- is one of these, so a user's change (an edit, a template, a restore, an evolution step)
-- is never reverted by an import; `--force` overwrites it.
ALTER TABLE persona_versions ADD COLUMN imported boolean NOT NULL DEFAULT false;

-- the versions earlier imports wrote: their updates, and the first versions the command
-- line created (it creates personas only by importing them)
UPDATE persona_versions SET imported = true
 WHERE reason = 'imported' OR (version = 1 AND reason = 'created' AND created_by = 'cli');

-- The picture of a PNG card (the image without the card's text), so that an export as
-- PNG gives the persona its picture back; NULL for cards read from JSON or CHARX.
ALTER TABLE persona_cards ADD COLUMN picture bytea;
