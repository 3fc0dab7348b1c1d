"""OpenAI-compatible services keystile knows by name: where they live and which variable holds the key.

``provider: groq`` (native) or ``model: groq/llama-3.3-70b-versatile`` (LiteLLM) is an
``openai`` deployment with this base URL; an explicit ``api_base`` always wins, read as LiteLLM
reads it for that provider (``openai_base_url``), so a LiteLLM config keeps its meaning.
"""

from __future__ import annotations

from typing import NamedTuple


class Preset(NamedTuple):
    api_base: str | None
    key_env: str | None
    api_path: str = ""
    """For providers whose LiteLLM ``api_base`` is the server's root (Ollama's
    ``http://localhost:11434``, Mistral's ``https://api.mistral.ai``): the path of the
    OpenAI-compatible API under it, added to a configured ``api_base`` that lacks it."""
    native_paths: tuple[str, ...] = ()
    """Endpoints of the provider's own API that LiteLLM accepts at the end of ``api_base``
    (Ollama's ``/api/chat``); keystile speaks the OpenAI-compatible one instead."""


OPENAI_COMPATIBLE: dict[str, Preset] = {
    "openrouter": Preset("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "groq": Preset("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "deepseek": Preset("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together_ai": Preset("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    "together": Preset("https://api.together.xyz/v1", "TOGETHERAI_API_KEY"),
    # LiteLLM appends /v1 to a Mistral api_base that does not end with it.
    "mistral": Preset("https://api.mistral.ai/v1", "MISTRAL_API_KEY", "/v1"),
    "fireworks_ai": Preset("https://api.fireworks.ai/inference/v1", "FIREWORKS_AI_API_KEY"),
    "xai": Preset("https://api.x.ai/v1", "XAI_API_KEY"),
    "deepinfra": Preset("https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY"),
    "perplexity": Preset("https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
    # LiteLLM calls Ollama's own API at <api_base>/api/chat (ollama_chat) or /api/generate
    # (ollama); keystile calls its OpenAI-compatible one, which Ollama serves under /v1.
    "ollama": Preset("http://127.0.0.1:11434/v1", None, "/v1", ("/api/chat", "/api/generate")),
    "ollama_chat": Preset("http://127.0.0.1:11434/v1", None, "/v1", ("/api/chat", "/api/generate")),
    "lm_studio": Preset("http://127.0.0.1:1234/v1", None),
    "vllm": Preset(None, None),
    "hosted_vllm": Preset(None, None),
    "openai_compatible": Preset(None, None),
}


def openai_base_url(provider: str, api_base: str) -> str:
    """The URL keystile appends ``/chat/completions`` to, for ``api_base`` as written for ``provider``.

    LiteLLM uses an OpenAI-type ``api_base`` as the client's base URL, and takes one that
    already ends in ``/chat/completions`` as the whole endpoint; Ollama's and Mistral's are
    the server's root (see ``Preset.api_path``).
    """
    base = api_base.rstrip("/").removesuffix("/chat/completions")
    preset = OPENAI_COMPATIBLE.get(provider)
    if preset is not None:
        for path in preset.native_paths:
            base = base.removesuffix(path)
        if preset.api_path and not base.endswith(preset.api_path):
            base += preset.api_path
    return base


# Every provider prefix LiteLLM knows (its ``LlmProviders``), so that ``model: <prefix>/…`` with a
# prefix outside this set is a typo, not a provider keystile merely does not serve yet.
LITELLM_PROVIDERS = frozenset(
    """
    openai chatgpt openai_like jina_ai xai zai custom_openai text-completion-openai cohere cohere_chat
    clarifai anthropic anthropic_text bytez replicate reducto runwayml aws_polly huggingface together_ai
    openrouter datarobot vertex_ai vertex_ai_beta gemini ai21 baseten black_forest_labs azure azure_text
    azure_ai sagemaker sagemaker_chat sagemaker_nova bedrock vllm nlp_cloud petals oobabooga ollama
    ollama_chat deepinfra perplexity mistral milvus groq a2a gigachat nvidia_nim nvidia_riva soniox
    cerebras ai21_chat volcengine codestral text-completion-codestral dashscope modelscope moonshot
    publicai v0 morph lambda_ai inception text-completion-inception deepseek sambanova maritalk voyage
    cloudflare xinference fireworks_ai friendliai featherless_ai watsonx watsonx_text triton predibase
    databricks empower github ragflow compactifai docker_model_runner custom litellm_proxy hosted_vllm
    tencent llamafile lm_studio galadriel nebius infinity deepgram elevenlabs novita aiohttp_openai
    langfuse humanloop topaz sap assemblyai charity_engine github_copilot snowflake gradient_ai
    meta_llama nscale pg_vector s3_vectors helicone hyperbolic recraft fal_ai stability heroku aiml
    cometapi oci auto_router vercel_ai_gateway dotprompt manus wandb ovhcloud scaleway lemonade
    amazon_nova a2a_agent langgraph langflow minimax synthetic apertis nano-gpt poe chutes neosantara
    parasail xiaomi_mimo tensormesh libertai pinstripes darkbloom meta litellm_agent cursor
    bedrock_mantle gdc anyscale
    """.split()
)
