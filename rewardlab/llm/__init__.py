"""Ask LLMs for text: an OpenAI-compatible chat-completions client with a response cache.

Standard library only (``urllib``, threads), so importing it is cheap. The client reaches
OpenAI, vLLM, llama.cpp's server and Ollama through ``LLMConfig.base_url``; see
:mod:`rewardlab.llm.client` for retries, concurrency and errors, and
:mod:`rewardlab.llm.cache` for what the cache key covers and the replay mode.
"""

from rewardlab.llm.cache import CACHE_MODES, CacheMode, ReplayMiss, ResponseCache, request_key
from rewardlab.llm.client import (
    Abandoned,
    AuthenticationError,
    BudgetExceeded,
    ChatClient,
    Completion,
    LLMConfig,
    LLMError,
    SampleInterrupted,
    Usage,
    default_base_url,
)

__all__ = [
    "CACHE_MODES",
    "Abandoned",
    "AuthenticationError",
    "BudgetExceeded",
    "CacheMode",
    "ChatClient",
    "Completion",
    "LLMConfig",
    "LLMError",
    "ReplayMiss",
    "ResponseCache",
    "SampleInterrupted",
    "Usage",
    "default_base_url",
    "request_key",
]
