# syntax=docker/dockerfile:1
# Rickshaw's one binary in a small image: `docker build -t rickshaw .`
#   docker run -p 8080:8080 rickshaw                 # rickshaw up: everything in one process, SQLite
#   docker run rickshaw serve --services trip …      # one service of the distributed mode (deploy/)
# The build stage compiles with the toolchain the workspace pins (rust-version 1.94+); the runtime
# stage is Debian slim with CA certificates, a non-root user and the binary, nothing else.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rickshaw \
    && install -m 0755 target/release/rickshaw /usr/local/bin/rickshaw

FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 rickshaw \
    && useradd --system --uid 10001 --gid rickshaw --home-dir /var/lib/rickshaw --create-home rickshaw
COPY --from=build /usr/local/bin/rickshaw /usr/local/bin/rickshaw
USER 10001:10001
WORKDIR /var/lib/rickshaw
ENV RICKSHAW_LISTEN=0.0.0.0:8080 \
    RICKSHAW_DATA_DIR=/var/lib/rickshaw \
    RICKSHAW_LOG__FORMAT=json
EXPOSE 8080
# `rickshaw probe` GETs the URL and exits 0 on a 2xx: no curl in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["rickshaw", "probe", "http://127.0.0.1:8080/readyz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["rickshaw"]
CMD ["up"]
