"""Infrastructure: connections, embedded servers, migrations, the event loop, the
shared vector store, the persona catalog's index, metrics, rate limits, turn order and
tokens."""
