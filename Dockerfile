# coursepay image: a release build in the Rust image, run from Debian slim as a non-root user.
#
#   docker build -t coursepay:$(git rev-parse --short=12 HEAD) \
#     --build-arg COURSEPAY_GIT_COMMIT=$(git rev-parse --short=12 HEAD) \
#     --build-arg COURSEPAY_BUILD_TIME=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#
# The build context leaves .git out (.dockerignore), so the commit and build time that
# /version and `coursepay --version` report come from these build arguments.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
ARG COURSEPAY_GIT_COMMIT=unknown
ARG COURSEPAY_BUILD_TIME=unknown
ENV COURSEPAY_GIT_COMMIT=${COURSEPAY_GIT_COMMIT} \
    COURSEPAY_BUILD_TIME=${COURSEPAY_BUILD_TIME}
COPY . .
RUN cargo build --release --locked -p coursepay-cli \
    && install -m 0755 target/release/coursepay /usr/local/bin/coursepay

FROM debian:bookworm-slim
# ca-certificates: TLS to Toss and PostgreSQL; curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/coursepay \
       --shell /usr/sbin/nologin coursepay
COPY --from=build /usr/local/bin/coursepay /usr/local/bin/coursepay
USER coursepay
WORKDIR /var/lib/coursepay
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
# Liveness only: /readyz (database, draining) is for the load balancer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz >/dev/null || exit 1
# SIGTERM drains in-flight requests (SHUTDOWN_GRACE_SECONDS); stop with a longer timeout
# (`docker stop -t 45`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["coursepay"]
CMD ["serve"]
