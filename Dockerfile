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
# Listen on all interfaces: in a pod, the kubelet probes the pod IP.
ENV CEDAR_SIDECAR_LISTEN=0.0.0.0:8180
EXPOSE 8180
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["cedar-sidecar", "probe", "--path", "/healthz"]
ENTRYPOINT ["cedar-sidecar"]
CMD ["serve"]
