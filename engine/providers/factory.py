"""Build the provider a resolved Config asks for."""

import os
from collections.abc import Mapping

from engine.config import Config, ConfigError
from engine.providers.base import Provider


def make_provider(config: Config, env: Mapping[str, str] | None = None, **client_options) -> Provider:
    """Raise ConfigError (exit 2, nothing written) when a needed API key is missing."""
    env = os.environ if env is None else env
    settings = config.provider
    if settings.name == "simulated":
        from engine.providers.simulated import SimulatedProvider

        return SimulatedProvider(seed=config.seed or 0, latency_ms=settings.latency_ms)
    api_key = env.get(settings.api_key_env) if settings.api_key_env else None
    if settings.name == "openrouter" and not api_key:
        raise ConfigError(
            f"provider.api_key_env: environment variable {settings.api_key_env} is not set "
            "(OpenRouter needs an API key)"
        )
    if settings.api_key_env and not api_key:
        raise ConfigError(f"provider.api_key_env: environment variable {settings.api_key_env} is not set")
    from engine.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(settings, api_key=api_key, **client_options)
