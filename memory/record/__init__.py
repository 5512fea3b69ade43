"""The conversation record in PostgreSQL: transcripts (sessions and messages, the
source of truth for what was said), what was observed of each reply, ratings of
messages and the settings they moved, and the read-only aggregates over them."""
