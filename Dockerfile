# Multi-stage build: a Rust builder, then a small Debian runtime with only the binary and the
# shipped pipelines.
FROM rust:1.95-bookworm AS build
# librdkafka is built with TLS and SASL (PLAIN, SCRAM) against the system OpenSSL.
# Unpinned on purpose: bookworm's security updates replace (and drop) the old versions.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# `faultline --version` names this revision; the context carries no .git (.dockerignore):
#   docker build --build-arg FAULTLINE_GIT_REV="$(git rev-parse --short=12 HEAD)" .
ARG FAULTLINE_GIT_REV=unknown
ENV FAULTLINE_GIT_REV=$FAULTLINE_GIT_REV
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY benches benches
COPY tests tests
RUN cargo build --release --locked --bin faultline

FROM debian:bookworm-slim
# Unpinned on purpose: bookworm's security updates replace (and drop) the old versions.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 faultline
COPY --from=build /src/target/release/faultline /usr/local/bin/faultline
# The shipped pipelines, for running the image alone; docker-compose.yml mounts the
# repository's pipelines/ over them, so a rule change needs no rebuild (hot reload).
COPY pipelines /etc/faultline/pipelines
# Numeric, so that runAsNonRoot-style checks can verify it without /etc/passwd.
USER 10001
ENTRYPOINT ["faultline"]
CMD ["run", "--pipeline", "/etc/faultline/pipelines/inference", "--brokers", "kafka:9092"]
