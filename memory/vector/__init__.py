"""Vector memory: the embedder, the indexes (Qdrant Edge, a Qdrant server, one shared
over a socket) and how their results are ranked."""
