"""Build the provider a resolved Config asks for."""

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from engine.config import Config, ConfigError
from engine.providers.base import Provider


def make_provider(config: Config, env: Mapping[str, str] | None = None, **client_options: Any) -> Provider:
    """Raise ConfigError (exit 2, nothing written) when a needed API key is missing or
    the base URL is unusable. `client_options` go to OpenAICompatProvider (e.g. a test
    `transport`, or `on_unknown_price` to route the unknown-price warning)."""
    env = os.environ if env is None else env
    settings = config.provider
    if settings.name == "simulated":
        from engine.providers.simulated import SimulatedProvider

        return SimulatedProvider(
            seed=config.seed or 0, latency_ms=settings.latency_ms, effect=settings.simulated_effect
        )
    base_url = settings.base_url or ""
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"provider.base_url: expected an http:// or https:// URL, got {base_url!r}")
    api_key = api_key_for(config, env)
    from engine.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(settings, api_key=api_key, **client_options)


def api_key_for(config: Config, env: Mapping[str, str] | None = None) -> str | None:
    """The API key the config's provider needs, from the environment; ConfigError (naming
    the variable, never the value) when it is missing or unusable."""
    env = os.environ if env is None else env
    settings = config.provider
    if settings.name == "simulated":
        return None
    api_key = env.get(settings.api_key_env) if settings.api_key_env else None
    if settings.name == "openrouter" and not api_key:
        raise ConfigError(
            f"provider.api_key_env: environment variable {settings.api_key_env} is not set "
            "(OpenRouter needs an API key)"
        )
    if settings.api_key_env and not api_key:
        raise ConfigError(f"provider.api_key_env: environment variable {settings.api_key_env} is not set")
    if api_key is not None:
        api_key = api_key.strip()  # a trailing newline from `$(cat keyfile)` is common
        if not api_key or not all(33 <= ord(c) < 127 for c in api_key):
            raise ConfigError(  # never echo the value: it is a secret
                f"provider.api_key_env: the key in {settings.api_key_env} contains spaces or "
                "characters that cannot go in an HTTP header"
            )
        check_key_transport(settings.base_url or "", settings.allow_insecure)
    return api_key


def check_key_transport(base_url: str, allow_insecure: bool) -> None:
    """A key goes over plain http:// only to this machine, unless the user allowed it
    (`--allow-insecure`, recorded in the manifest's config): anyone on the path could
    read it."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or allow_insecure or is_loopback(parts.hostname or ""):
        return
    raise ConfigError(
        f"provider.base_url: refusing to send the API key over plain http:// to "
        f"{parts.hostname or '(no host)'!r}; use https://, or pass --allow-insecure "
        "(provider.allow_insecure = true) on a network you trust"
    )


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
