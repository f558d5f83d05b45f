"""API keys: where the cascade finds them, and how it keeps them out of everything it shows.

Keys are read at call time (environment, a ``.env`` file, Colab secrets) and never stored on an
object; every text the cascade shows (a server's error, a reason, an answer) passes through
:func:`scrub` first.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import config
from .providers import ALL_KEY_ENVS, Provider

__all__ = ["colab_secret", "find_key", "forget_missing_secrets", "one_line", "scrub", "secret_values"]


# Colab secrets a lookup did not find, so that a missing secret does not cost a round trip (or an
# access dialog) on every call; get_cascade() forgets them, so a secret added later is found.
_COLAB_MISSING: set[str] = set()


def colab_secret(name: str) -> str | None:
    """The Colab secret ``name``, or None outside Colab or when it is missing or not shared.

    A secret found is also put into ``os.environ`` (without overriding it), so that later calls and
    the command line in a ``!`` cell see it.
    """
    if name in _COLAB_MISSING:
        return None
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        value = userdata.get(name)
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException, ...: not available
        value = None
    if not isinstance(value, str) or not value.strip():
        _COLAB_MISSING.add(name)
        return None
    config.remember(name, value.strip())
    return value.strip()


def forget_missing_secrets() -> None:
    """Look up every Colab secret again on the next call (one may have been added meanwhile)."""
    _COLAB_MISSING.clear()


def find_key(provider: Provider) -> tuple[str, str] | None:
    """(env var, key) for ``provider`` from the environment (incl. ``.env``) or Colab secrets."""
    for name in provider.key_envs:
        value = config.env(name)
        if value:
            return name, value
    for name in provider.key_envs:
        value = colab_secret(name)
        if value:
            return name, value
    return None


def secret_values() -> list[str]:
    """Every configured key value (long enough to be a real key), for scrubbing text we show."""
    values = {config.env(name) or "" for name in ALL_KEY_ENVS}
    return sorted((v for v in values if len(v) >= 8), key=len, reverse=True)


def scrub(text: str, secrets: Sequence[str] | None = None) -> str:
    """``text`` with every key value (``secrets``, default: the configured keys) replaced by ``***``."""
    secrets = secret_values() if secrets is None else secrets
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def one_line(text: object, limit: int = 160) -> str:
    """One line of a server's message, keys scrubbed before it is cut (a cut key would survive)."""
    text = scrub(" ".join(str(text or "").split()), secret_values())
    return text if len(text) <= limit else text[: limit - 1] + "…"
