# One image with the three programs in /usr/local/bin; the command picks one.
#
#   docker build -t kp:dev --build-arg KP_GIT_COMMIT=$(git rev-parse --short HEAD) .
#   docker run --rm kp:dev activator --version     # activator 0.1.0 (git 1a2b3c4)
#   docker run --rm kp:dev activator --help
#   docker run --rm kp:dev queue-proxy --help
#   docker run --rm kp:dev helloworld --help
#   docker run --rm -p 8080:8080 kp:dev activator      # the demo (config/local.json),
#                                                      # pods as processes in the container
#
# With no command it runs queue-proxy, because Knative starts its queue
# sidecar image without a command (see config/kubernetes/README.md). It runs
# as uid 65532, non-root, and writes nothing to its filesystem.

FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libuv1-dev libcurl4-openssl-dev libcjson-dev node-llhttp \
      libprotobuf-c-dev protobuf-c-compiler libnghttp2-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# --version reports VERSION and the commit; the build context has no .git, so
# pass it: docker build --build-arg KP_GIT_COMMIT=$(git rev-parse --short HEAD) .
ARG KP_GIT_COMMIT=
# (an ARG is in the environment of every RUN below, so make sees it)
COPY Makefile VERSION ./
COPY scripts/version.sh scripts/
COPY common common
COPY queue-proxy queue-proxy
COPY activator activator
COPY examples examples
RUN make -j"$(nproc)" build/queue-proxy build/helloworld build/activator \
    && strip build/queue-proxy build/helloworld build/activator

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libcurl4 libcjson1 libprotobuf-c1 libnghttp2-14 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 kp \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
         --shell /usr/sbin/nologin kp
COPY --from=build /src/build/activator /src/build/queue-proxy /src/build/helloworld /usr/local/bin/
# The demo configuration, used when --config is not given. On Kubernetes the
# ConfigMap kp-config is mounted at /etc/kp and passed with --config.
COPY config/local.json /usr/share/kp/local.json
ENV KP_ACTIVATOR_CONFIG=/usr/share/kp/local.json
USER 65532:65532
EXPOSE 8080 8012 9090
ENTRYPOINT []
CMD ["queue-proxy"]
