"""keystile — an LLM gateway that lets every real client in with its virtual key, fast."""

__version__ = "0.1.0"
