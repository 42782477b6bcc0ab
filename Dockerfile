# syntax=docker/dockerfile:1
#
# ROT images from one Dockerfile:
#   rot (default)   the service binaries rot-server, rot-proxy, rot-bootstrap and rot on
#                   debian:bookworm-slim, running as the unprivileged user `rot`
#   litecoind       Debian's own litecoind package, for the regtest node of docker-compose.yml
#
#   docker build -t rot:local .
#   docker build --target litecoind -t rot-litecoind:local .
#
# Settings are environment variables (see `rot-server --help`, `rot-proxy --help`,
# docs/server.md and docs/proxy.md); data lives in /var/lib/rot (server) and
# /var/lib/rot-proxy (proxy), meant to be volumes.

# The runtime images are Debian's; the build image must be of the same release (same glibc).
ARG DEBIAN_RELEASE=bookworm
# Any Rust from the workspace's rust-version (1.90) on; `1` is the newest stable.
ARG RUST_VERSION=1

# --- build: compile the service binaries -----------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# Caches keep crates.io downloads and compiled dependencies between builds; the binaries are
# copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p rot-server -p rot-proxy -p rot-bootstrap --bins \
    && mkdir -p /out \
    && cp target/release/rot-server target/release/rot-proxy \
          target/release/rot-bootstrap target/release/rot /out/

# --- litecoind: the coin node of the compose ring, from Debian's package ---------------------
FROM debian:${DEBIAN_RELEASE}-slim AS litecoind
RUN apt-get update \
    && apt-get install -y --no-install-recommends litecoind \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10002 --home-dir /var/lib/litecoin \
       --shell /usr/sbin/nologin litecoin \
    && install -d -o litecoin -g litecoin -m 0750 /var/lib/litecoin
USER litecoin
VOLUME ["/var/lib/litecoin"]
# regtest RPC and P2P
EXPOSE 19443 19444
ENTRYPOINT ["litecoind", "-datadir=/var/lib/litecoin", "-printtoconsole"]
CMD ["-regtest"]

# --- rot: the runtime image (default target) -------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS rot
# ca-certificates: TLS to proxies, mirrors and ssl:// Electrum servers; curl: health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /var/lib/rot \
       --shell /usr/sbin/nologin rot \
    && install -d -o rot -g rot -m 0750 /var/lib/rot /var/lib/rot-proxy /var/lib/rot-bootstrap
COPY --from=build /out/ /usr/local/bin/
USER rot
WORKDIR /var/lib/rot
# Defaults for a container: listen on every interface, keep data in the volume directories.
ENV ROT_LISTEN_ADDR=0.0.0.0:3002 \
    ROT_DATA_DIR=/var/lib/rot \
    ROT_PROXY_LISTEN_ADDR=0.0.0.0:3003 \
    ROT_PROXY_DATA_DIR=/var/lib/rot-proxy
# rot-server, rot-proxy
EXPOSE 3002 3003
CMD ["rot-server"]
