"""Pure conversions between the Anthropic Messages and OpenAI Chat Completions formats."""
