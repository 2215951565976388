# One image with the three programs; the command picks one:
#   docker build -t kp .
#   docker run --rm kp queue-proxy --help
#   docker run --rm -p 8080:8080 kp activator --config /etc/kp/local.json
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libuv1-dev libcurl4-openssl-dev libcjson-dev node-llhttp \
      libprotobuf-c-dev protobuf-c-compiler && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common common
COPY queue-proxy queue-proxy
COPY activator activator
COPY examples examples
RUN make -j2 build/queue-proxy build/helloworld $(test -f activator/main.c && echo build/activator)

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libcurl4 libcjson1 libprotobuf-c1 ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 65532 --no-create-home kp
COPY --from=build /src/build/queue-proxy /src/build/helloworld /usr/local/bin/
COPY --from=build /src/build/activator* /usr/local/bin/
COPY config/local.json /etc/kp/local.json
USER 65532
ENTRYPOINT []
CMD ["queue-proxy"]
