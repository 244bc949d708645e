# GoPulse Messages: two stages on debian:bookworm-slim.
#   build    the packages of role `build` in packages.txt, then the Makefile (`make`),
#            exactly as `make run` and .ci/run do on the host
#   runtime  the packages of role `runtime` (shared libraries, ca-certificates), the two
#            binaries, sql/ and the Swagger UI assets; runs as uid 10001
#
#   make swagger-ui       # first, on the host: puts the Swagger UI assets in web/swagger/
#   docker build -t gopulse-messages .
#
# No `COPY --link` and no heredocs: the CI builder is buildah 1.28 (see CONTAINERS.md).

FROM debian:bookworm-slim AS build

WORKDIR /src
# The package list first, so editing the sources does not reinstall the toolchain.
COPY packages.txt ./
COPY scripts/install-deps.sh scripts/
RUN ./scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*

COPY Makefile openapi.yaml ./
COPY scripts/embed-sql.sh scripts/embed-openapi.py scripts/
COPY include/ include/
COPY src/ src/
COPY sql/ sql/
COPY test/receiver.c test/
# Symbols stay (-g, 0.3 MB): backtraces from a core dump are worth more than the bytes.
RUN make -j"$(nproc)" && build/gopulse-messages --version


FROM debian:bookworm-slim AS runtime

# Keep VERSION equal to GOPULSE_VERSION in include/common.h (scripts/compose-e2e.sh checks it).
ARG VERSION=0.1.0
ARG REVISION=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="GoPulse Messages" \
      org.opencontainers.image.description="Message dispatch service: messages in PostgreSQL, delivered to a webhook, deliveries cached in Redis, a small REST API. Also carries webhook-receiver, a local stand-in webhook." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="NOASSERTION" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

COPY packages.txt /tmp/deps/
COPY scripts/install-deps.sh /tmp/deps/scripts/
# install-deps.sh runs apt-get update and installs with --no-install-recommends.
# A named user (not only a uid): libpq looks the user up when a DSN names none.
RUN /tmp/deps/scripts/install-deps.sh runtime \
 && rm -rf /tmp/deps /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/log/apt/* \
 && groupadd --system --gid 10001 gopulse \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin gopulse

COPY --from=build /src/build/gopulse-messages /src/build/webhook-receiver /usr/local/bin/
# The schema is compiled into the binary (applied at start); the files are here to read
# or to apply by hand.
COPY sql/ /usr/share/gopulse-messages/sql/
# Only index.html unless `make swagger-ui` ran before the build; /swagger/ then says so.
COPY web/swagger/ /usr/share/gopulse-messages/swagger/

ENV SWAGGER_DIR=/usr/share/gopulse-messages/swagger
# GnuTLS comes in only as a dependency of libcurl's and libpq's own
# dependencies (librtmp, libldap), which initialise it themselves when they
# use it; its constructor would otherwise do so in every process: ~0.85 MiB
# of RSS (README, `make bench`, what binds).
ENV GNUTLS_NO_IMPLICIT_INIT=1
WORKDIR /usr/share/gopulse-messages
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# GET /health on $BIND_ADDR:$PORT (127.0.0.1 for 0.0.0.0), no curl needed; /health touches no dependency.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/gopulse-messages", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gopulse-messages"]
