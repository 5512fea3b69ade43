"""Infrastructure: connections, embedded servers, migrations, the event loop, the
shared vector store, metrics, rate limits, turn order and tokens."""
