"""The conversation record in PostgreSQL: transcripts (sessions and messages, the
source of truth for what was said) and what was observed of each reply."""
