"""The floor: a raw ASGI app on uvicorn, set up as ``keystile serve`` sets it up, doing nothing.

It reads the request body and answers with a fixed Messages-sized JSON body. Measured beside
keystile, it shows what the HTTP server and this machine cost per request before any
gateway code runs: keystile's own cost is the difference.
"""

BODY = (
    b'{"id":"msg_floor","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",'
    b'"content":[{"type":"text","text":"Hello from the floor. You said: Hello"}],"stop_reason":"end_turn",'
    b'"stop_sequence":null,"usage":{"input_tokens":2,"output_tokens":7}}'
)
HEADERS = [(b"content-type", b"application/json")]


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
