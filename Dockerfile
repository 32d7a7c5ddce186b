# syntax=docker/dockerfile:1
#
# The `twin` binary in a small image. No Docker engine runs in this project's CI, so this file is
# not exercised by CI; build it locally with `docker build -t twin .` (or `docker compose build`).
#
# Without configuration the container runs the embedded defaults (SQLite, in-process vector index,
# built-in responder) in /data and loads the demo creator (`twin serve --demo`).

# --- build -----------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target folder between builds; the binary is copied out
# because the cached target folder does not end up in the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release -p twin-api --locked \
    && install -D -m 0755 target/release/twin /out/twin

# --- run -------------------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 twin \
    && useradd --system --uid 10001 --gid twin --home-dir /data --shell /usr/sbin/nologin twin \
    && mkdir -p /data \
    && chown twin:twin /data
COPY --from=builder /out/twin /usr/local/bin/twin

# A `twin.toml` mounted into /app is picked up (the config file is read from the working folder).
WORKDIR /app
ENV TWIN_LISTEN=0.0.0.0:8080 \
    TWIN_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
USER twin
CMD ["twin", "serve", "--demo"]
