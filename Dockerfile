FROM python:3.11.11-slim

# torch is installed first and pinned so that nothing pulls a different build;
# pass --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> to avoid CUDA packages.
ARG TORCH_INDEX_URL=""
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX_URL"; \
    else pip install --no-cache-dir torch==2.13.0; fi
COPY pyproject.toml README.md ./
COPY runtime runtime
COPY agents agents
COPY memory memory
COPY personas personas
COPY socket_server socket_server
COPY migrations migrations
RUN pip install --no-cache-dir ".[local]"

# On 0.0.0.0 the server refuses to start without PERSONAE_AUTH_SECRET (every client
# would be an admin), unless PERSONAE_ALLOW_OPEN_WITHOUT_SECRET=true says only trusted
# clients reach the port (docker-compose.yml publishes it on the host's loopback only).
ENV PERSONAE_HOST=0.0.0.0 PERSONAE_PORT=8000 PERSONAE_HOME=/data
VOLUME /data
EXPOSE 8000
CMD ["sh", "-c", "personae migrate && personae personas import && exec personae serve"]
