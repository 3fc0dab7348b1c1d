"""The official google-genai SDK reading keystile's Gemini output over real HTTP.

``GeminiSDKServer`` is a small HTTP server on 127.0.0.1 that answers each request with the
next queued response (status, content type, body bytes) and records what it was sent; the
SDK's ``Client`` is pointed at it, so the SDK's own HTTP handling, SSE line splitting, error
detection and response types judge the bytes the translators produced.
"""

from __future__ import annotations

import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from keystile.sse import SSEParser


# A real two-chunk stream from gemini-2.5-flash (simonw/llm-gemini#97), framed as Google frames it.
RECORDED = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "Here you go!\\n\\n1.  **English:** Hi\\n2.  **Spanish:** Hola\\n3.  **French:** Bonjour\\n4.  **German:** Hallo\\n5.  "}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 5,"candidatesTokenCount": 39,"totalTokenCount": 230,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 5}],"thoughtsTokenCount": 186},"modelVersion": "models/gemini-2.5-flash-preview-05-20","responseId": "AdVRaMmDCYekqtsPrb_-iAw"}\r\n\r\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "**Italian:** Ciao"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 5,"candidatesTokenCount": 44,"totalTokenCount": 235,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 5}],"thoughtsTokenCount": 186},"modelVersion": "models/gemini-2.5-flash-preview-05-20","responseId": "AdVRaMmDCYekqtsPrb_-iAw"}\r\n\r\n'
)


class GeminiSDKServer:
    def __init__(self) -> None:
        self.responses: deque[tuple[int, str, bytes]] = deque()
        self.requests: list[tuple[str, str, bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                owner.requests.append((self.command, self.path, self.rfile.read(length)))
                status, content_type, body = owner.responses.popleft()
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GeminiSDKServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def client(self):
        from google import genai
        from google.genai import types

        options = types.HttpOptions(base_url=self.base_url, retry_options=types.HttpRetryOptions(attempts=1))
        return genai.Client(api_key="test-key", http_options=options)

    def queue(self, body: bytes, *, status: int = 200, content_type: str = "application/json") -> None:
        self.responses.append((status, content_type, body))


def gemini_chunks(raw: bytes) -> list[dict]:
    """Gemini SSE bytes → the chunk objects, checking Google's framing: data-only, CRLF-ended."""
    assert raw.endswith(b"\r\n\r\n"), raw[-40:]
    parser = SSEParser()
    events = parser.feed(raw) + parser.close()
    for event in events:
        assert event.event is None and event.raw.startswith(b"data: ") and event.raw.endswith(b"\r\n\r\n"), event.raw[:80]
    return [orjson.loads(event.data) for event in events]
