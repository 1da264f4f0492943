# Stand-in for axllent/mailpit: devstack's mail sink (Mailpit's HTTP API on 8025, SMTP on
# 1025, messages in memory), with `/mailpit readyz` for the healthcheck.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN --mount=from=uv,source=/uv,target=/usr/local/bin/uv \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    uv venv --quiet --python /usr/bin/python3.11 /opt/mailsink \
    && VIRTUAL_ENV=/opt/mailsink uv pip install --quiet --no-cache -r /tmp/requirements.txt
COPY devstack /opt/mailsink/lib/python3.11/site-packages/devstack
COPY mailpit.py /mailpit
RUN sed -i '1c #!/opt/mailsink/bin/python' /mailpit && chmod 755 /mailpit \
    && useradd --system --uid 10002 mailpit
USER mailpit
EXPOSE 1025 8025
ENTRYPOINT ["/mailpit"]
