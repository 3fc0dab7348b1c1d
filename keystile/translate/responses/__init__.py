"""OpenAI Responses API ⇄ Anthropic Messages, the form every other format meets in.

A Responses client (Codex CLI, the OpenAI SDK, opencode) reaches any upstream through
Messages: its request goes Responses → Messages (``request``), the answer Messages →
Responses (``response``, ``stream``). An OpenAI Responses upstream serves any client the
other way round. Pure functions and state machines; nothing here does I/O.

    request    responses_request_to_messages, messages_request_to_responses
    response   messages_response_to_responses, responses_response_to_messages
    stream     MessagesStreamToResponses, ResponsesStreamToMessages
    tools      Responses tool kinds (function, namespace, custom, local_shell) ⇄ Anthropic tools
    reasoning  thinking blocks ⇄ reasoning items, each side's signature kept in the other's
    output     the response object and output items keystile builds from Claude's blocks
"""
