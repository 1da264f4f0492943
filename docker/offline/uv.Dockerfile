# Stand-in for ghcr.io/astral-sh/uv:<version>: /uv and /uvx on an empty image, from PyPI's wheel.
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS fetch
ARG UV_VERSION
COPY fetch_wheel.py /
RUN python3 /fetch_wheel.py uv "$UV_VERSION" uv /uv \
    && python3 /fetch_wheel.py uv "$UV_VERSION" uvx /uvx \
    && /uv --version

FROM scratch
COPY --from=fetch /uv /uvx /
ENTRYPOINT ["/uv"]
