# One image with every binary (each service, the gateway, and the test kit's `fake-stripe`,
# which only compose's local demo runs); the chart and compose pick the binary with
# `command`. Build: docker build -t festival .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --workspace --bins --locked \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -executable -exec cp {} /out/ \;

# distroless: no shell, no package manager; runs as the non-root user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# Each container sets its own command, e.g. ["/usr/local/bin/identity", "serve"].
ENTRYPOINT []
