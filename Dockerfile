# syntax=docker/dockerfile:1
#
# switchyard's image: a small Debian runtime with one static-ish binary.
#
#   docker build -t switchyard .
#   docker run --rm -p 6432:6432 -p 9187:9187 \
#     -v "$PWD/switchyard.toml:/etc/switchyard/switchyard.toml:ro" switchyard
#
# Inside a container, listen on all interfaces: [listen] address = "0.0.0.0:6432" and, if the
# admin API must be reachable from outside, [admin] address = "0.0.0.0:9187" with a token
# (token_env). The config's relative paths (journal_dir, mismatch_log) resolve under
# /var/lib/switchyard, the working directory; mount a volume there to keep the journal.

# ---- build ------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# clang + libclang: bindgen, for pg_query (PostgreSQL's parser, built from C).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang libclang-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The whole workspace: cargo needs every member's manifest, even to build one package.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchyard \
 && install -m 0755 target/release/switchyard /usr/local/bin/switchyard

# ---- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system switchyard \
 && useradd --system --gid switchyard --home-dir /var/lib/switchyard --shell /usr/sbin/nologin switchyard \
 && mkdir -p /etc/switchyard /var/lib/switchyard \
 && chown switchyard:switchyard /var/lib/switchyard

COPY --from=builder /usr/local/bin/switchyard /usr/local/bin/switchyard

USER switchyard
WORKDIR /var/lib/switchyard
VOLUME ["/var/lib/switchyard"]
# 6432: PostgreSQL clients. 9187: admin API (/status, /metrics, /reload, dashboard).
EXPOSE 6432 9187
ENTRYPOINT ["switchyard"]
CMD ["serve", "--config", "/etc/switchyard/switchyard.toml"]
