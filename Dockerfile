# Container image of the intezer-dynamic Assemblyline service.
#
#   docker build \
#       --build-arg version=4.6.0.stable1 \
#       --build-arg commit="$(git rev-parse --short HEAD)" \
#       -t registry.example.org/intezer-dynamic-al:4.6.0.stable1 .
#
# Tag the image with the same value as `version`: the manifest baked into
# the binary registers that version, and AL pulls the image by that tag.
# Keep "assemblyline" out of the image name, because AL's scaler gives such
# images a Python liveness probe that this image cannot run.

# Build stage: the official Rust image on Debian 12 (bookworm), the release
# the runtime image is built from, so the binary finds the same glibc.
FROM rust:1.89-slim-bookworm AS build

# The image tag; it replaces $SERVICE_TAG in the manifest.
ARG version=4.0.0.dev0
# The git commit that `--version` prints; the build context has no .git.
ARG commit=unknown

WORKDIR /build
COPY Cargo.toml Cargo.lock build.rs service_manifest.yml ./
COPY src ./src
COPY benches ./benches
COPY config/quota-tiers.yml ./config/
COPY scripts/set-service-tag.sh ./scripts/

# The binary embeds the manifest, so its version is set before the build.
RUN sh scripts/set-service-tag.sh "$version" service_manifest.yml

ENV INTEZER_DYNAMIC_GIT_COMMIT=$commit \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --bin intezer-dynamic

# Runtime stage: glibc and libgcc only, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG version=4.0.0.dev0
LABEL org.opencontainers.image.title="intezer-dynamic" \
      org.opencontainers.image.description="Assemblyline 4 service for Intezer Analyze" \
      org.opencontainers.image.version=$version

COPY --from=build /build/target/release/intezer-dynamic /usr/local/bin/intezer-dynamic

# The distroless "nonroot" user, by number so that Kubernetes'
# runAsNonRoot can verify it.
USER 65532:65532

# /metrics, /healthz and /readyz (METRICS_ADDR).
EXPOSE 9464

HEALTHCHECK --interval=60s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/intezer-dynamic", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/intezer-dynamic"]
CMD ["serve"]
