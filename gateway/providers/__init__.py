"""The registry of provider families: one adapter class per family, chosen by `type`."""
from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.demo import DemoAdapter
from gateway.providers.gemini import GeminiAdapter
from gateway.providers.gigachat import GigaChatAdapter
from gateway.providers.openai_compat import OpenAICompatAdapter

ADAPTERS = {
    "openai": OpenAICompatAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "gigachat": GigaChatAdapter,
    "demo": DemoAdapter,
}


def adapter_for(family, transport, user_url_transport=None):
    """An adapter instance for `family`, sharing the worker's upstream transports."""
    return ADAPTERS[family](transport, user_url_transport)
