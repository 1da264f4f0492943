"""An OTLP/HTTP endpoint that accepts spans and drops them: the cost of tracing, measured
without a collector. `uv run python -m bench.otlp_sink 4318` then, in another shell,
`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 uv run python -m bench.http_reads`."""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the handler's protocol
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
