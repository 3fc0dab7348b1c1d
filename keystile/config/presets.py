"""OpenAI-compatible services keystile knows by name: where they live and which variable holds the key.

``provider: groq`` (native) or ``model: groq/llama-3.3-70b-versatile`` (LiteLLM) is an
``openai`` deployment with this base URL; an explicit ``api_base`` always wins.
"""

from __future__ import annotations

from typing import NamedTuple


class Preset(NamedTuple):
    api_base: str | None
    key_env: str | None


OPENAI_COMPATIBLE: dict[str, Preset] = {
    "openrouter": Preset("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "groq": Preset("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "deepseek": Preset("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together_ai": Preset("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "together": Preset("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "mistral": Preset("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "fireworks_ai": Preset("https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "xai": Preset("https://api.x.ai/v1", "XAI_API_KEY"),
    "deepinfra": Preset("https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    "perplexity": Preset("https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    "ollama": Preset("http://127.0.0.1:11434/v1", None),
    "ollama_chat": Preset("http://127.0.0.1:11434/v1", None),
    "lm_studio": Preset("http://127.0.0.1:1234/v1", None),
    "vllm": Preset(None, None),
    "hosted_vllm": Preset(None, None),
    "openai_compatible": Preset(None, None),
}
