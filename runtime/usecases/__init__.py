"""Use cases: what every interface (Socket.IO, REST, ``/v1``, the CLI) calls, each
once: chat, inspection, quality, the studio, feedback, greetings."""
