# The exporter built with glibc on Debian 12 (bookworm) and run on distroless/cc-debian12, the
# same release: glibc, libgcc, CA roots, /etc/passwd and tzdata, but no shell or package manager.
# Why not a static musl binary on scratch: musl's malloc is slow under many threads doing small
# allocations (it would need another allocator linked in), and with glibc the resolver, /etc files
# and CA roots behave as on any Debian host. The README's Docker section says more.
#
# Needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 with older engines).

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Every source of every workspace member (.dockerignore keeps target/, .git and the rest out).
# No separate dependency stage with stub sources: the cargo registry and target/ are cache
# mounts, so a change under src/ recompiles only this crate, and a new workspace member or a new
# [[bench]]/[[example]] target needs no change here.
COPY . .
# The build context has no .git: pass the revision in
# (docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD)).
ARG REVISION=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    GCORE_IAM_EXPORTER_REVISION="${REVISION}" \
        cargo build --release --locked --bin gcore-iam-exporter \
    && cp target/release/gcore-iam-exporter /gcore-iam-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /gcore-iam-exporter /gcore-iam-exporter
# nonroot:nonroot, numeric so that Kubernetes' runAsNonRoot can check it; the exporter needs no
# privileges, writes no file and listens above 1024.
USER 65532:65532
EXPOSE 19471
ENTRYPOINT ["/gcore-iam-exporter"]
