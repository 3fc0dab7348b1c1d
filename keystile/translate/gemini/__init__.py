"""Gemini API ⇄ Anthropic Messages, the hub form every other format meets in.

A Gemini client (Gemini CLI, google-genai, opencode's ``@ai-sdk/google``) is served by turning
its request into a Messages request and the Messages answer back into Gemini's shape; a
Gemini upstream (AI Studio, Vertex) is reached the other way round. Pairs with a third
format go through the hub twice (Gemini → Messages → Chat Completions).

    request.py   GenerateContentRequest ⇄ Messages request (and countTokens bodies), the entry
                 points of request_to_messages.py and request_to_gemini.py
    response.py  GenerateContentResponse ⇄ Messages response
    stream.py    ``alt=sse`` stream ⇄ Messages SSE, one event at a time
    errors.py    Google's ``{"error":{code,message,status}}`` ⇄ Anthropic error objects
    models.py    the ``GET /v1beta/models`` shapes
    schema.py    Gemini's OpenAPI-subset schemas → JSON Schema
    signatures.py  thinking and ``thoughtSignature`` carried across a round trip
    finish_reasons.py  ``finishReason`` ⇄ ``stop_reason``
    fields.py    reading Google's JSON, which also accepts snake_case field names
"""
