"""A real OTLP/HTTP trace receiver, run as its own process on 127.0.0.1 by the e2e tests.

    python -m tests.support.otlp_receiver PORT OUT.jsonl

Each ``POST /v1/traces`` (protobuf ExportTraceServiceRequest, as the OpenTelemetry SDK's
exporter sends it) is decoded with the OTLP protobuf definitions and every span appended to
OUT.jsonl as one JSON line (ids in hex, attributes as strings), then answered 200 with an empty
ExportTraceServiceResponse. What the tests read is what went over the wire.
"""

from __future__ import annotations

import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MAX_BODY = 16 * 1024 * 1024


def spans_of(body: bytes) -> list[dict[str, Any]]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    found = []
    for resource_spans in request.resource_spans:
        service = next((a.value.string_value for a in resource_spans.resource.attributes
                        if a.key == "service.name"), None)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append({
                    "service": service, "name": span.name, "kind": int(span.kind),
                    "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "attributes": {a.key: str(a.value).strip() for a in span.attributes},
                })
    return found


def main(port: int, out: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            if self.path != "/v1/traces" or not 0 < length <= MAX_BODY:
                self.send_error(400)
                return
            body = self.rfile.read(length)
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            with out.open("a") as sink:
                for span in spans_of(body):
                    sink.write(json.dumps(span) + "\n")
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
