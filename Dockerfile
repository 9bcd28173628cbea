# cedar-sidecar: build with the locked dependency set, run as a non-root user
# on a slim image with the bundled policies, schema and demo data.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cedar-sidecar

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin cedar
WORKDIR /app
COPY --from=build /src/target/release/cedar-sidecar /usr/local/bin/cedar-sidecar
# The public CA roots (the slim image has none), for `rediss://` to managed
# Redis services; a private CA is given with `--redis-tls-ca`.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY policies ./policies
COPY schema ./schema
COPY demo ./demo
USER 10001
# Decisions on all interfaces, for peers that call this container over the
# network (as a pod sidecar, set CEDAR_SIDECAR_LISTEN=127.0.0.1:8180 so only
# the pod's own containers reach them: deploy/kubernetes/sidecar-pod.yaml).
# Probes and metrics on their own listener, which serves nothing else: the
# kubelet probes the pod IP, and a flood of decision connections cannot
# starve the health check.
ENV CEDAR_SIDECAR_LISTEN=0.0.0.0:8180 \
    CEDAR_SIDECAR_PROBE_LISTEN=0.0.0.0:8181
EXPOSE 8180 8181
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["cedar-sidecar", "probe", "--address", "127.0.0.1:8181", "--path", "/healthz"]
ENTRYPOINT ["cedar-sidecar"]
CMD ["serve"]
