# syntax=docker/dockerfile:1
# Multi-stage build: compile in the official Rust image, run as a non-root
# user in a distroless image that has no shell. protoc comes from the
# protoc-bin-vendored crate, so the build stage needs nothing extra.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace (clients/rust and benches/ are part of the manifest);
# .dockerignore keeps target/, node_modules and venvs out of the context.
COPY . .
# .git stays out of the context: pass the commit for tessera_build_info with
# `--build-arg TESSERA_BUILD_COMMIT=$(git rev-parse --short HEAD)`.
ARG TESSERA_BUILD_COMMIT=unknown
ENV TESSERA_BUILD_COMMIT=${TESSERA_BUILD_COMMIT}
RUN cargo build --release --locked -p tessera --bin tessera \
    && cp target/release/tessera /tessera

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /tessera /usr/local/bin/tessera
USER nonroot:nonroot
# gRPC and admin HTTP. Bind to all interfaces inside the container; with no
# --callers the server refuses to start on a non-loopback address unless
# TESSERA_ALLOW_ANONYMOUS=true, so mount a callers file (see README).
ENV TESSERA_LISTEN=0.0.0.0:50051 \
    TESSERA_ADMIN_LISTEN=0.0.0.0:9090 \
    TESSERA_LOG_FORMAT=json
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]
