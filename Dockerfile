# syntax=docker/dockerfile:1
# A static (musl) binary on an empty base image: nothing in the image but the exporter, which
# carries its own CA roots (webpki-roots), so no OS, shell or package to patch.

FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
RUN rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
# Dependencies first, so that a change to src/ does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --target "$(uname -m)-unknown-linux-musl" \
    && rm -rf src
COPY src ./src
# The build context has no .git: pass the revision in (docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD)).
ARG REVISION=unknown
ENV GCORE_IAM_EXPORTER_REVISION=${REVISION}
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --target "$(uname -m)-unknown-linux-musl" \
    && cp "target/$(uname -m)-unknown-linux-musl/release/gcore-iam-exporter" /gcore-iam-exporter

FROM scratch
COPY --from=build /gcore-iam-exporter /gcore-iam-exporter
# nobody:nogroup; the exporter needs no privileges and listens above 1024.
USER 65534:65534
EXPOSE 19471
ENTRYPOINT ["/gcore-iam-exporter"]
