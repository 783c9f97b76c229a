"""Short model names, one rule for every surface: the verdict, the Markdown, the report screen.

A model's key is `provider/model` (`lmstudio@127.0.0.1:1234/qwen2.5-7b-instruct`), often 50
characters or more, and llama-server's model id is the path of its GGUF file. People read
`qwen2.5-7b-instruct`. The short name is the model id with Ollama's `:latest` dropped and a GGUF
path cut to its file name; the server kind is put back in front only when two servers serve the
same id, and the host only when two servers of one kind do. Names longer than MAX_NAME characters
are elided in the middle (the start says the family, the end the size and quantization). The
report prints a legend from short name to key wherever it uses short names. The headless output
and `soaktui models` (whose profile keys are `kind/model`, without the host) use the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_NAME = 32


def split_key(key: str, profile_key: bool = False) -> tuple[str, str, str]:
    """(server kind, host, model id) of a run's key `kind@host/model`, or of a profile key
    `kind/model`; ("", "", key) for a key without a provider."""
    head, sep, tail = key.partition("/")
    if sep and (profile_key or "@" in head):
        kind, _, host = head.partition("@")
        return kind, host, tail
    return "", "", key


def model_id(key: str) -> str:
    """The model part of a key (everything after the provider)."""
    return split_key(key)[2]


def _base(model: str) -> str:
    name = model.removesuffix(":latest")
    if name.lower().endswith(".gguf") or name.startswith(("/", "~", "./")):
        name = name.rstrip("/").rsplit("/", 1)[-1]
        name = name[:-5] if name.lower().endswith(".gguf") else name
    return name or model


def elide(name: str, width: int = MAX_NAME) -> str:
    """`name` cut in the middle to `width` characters (with …), when longer."""
    if len(name) <= width:
        return name
    keep = width - 1
    return name[: (keep + 1) // 2] + "…" + name[len(name) - keep // 2 :]


def short_names(keys: Iterable[str], *, profile_keys: bool = False) -> dict[str, str]:
    """key -> short name, distinct for distinct keys; `profile_keys` for the capability database's
    `kind/model` keys."""
    keys = list(dict.fromkeys(keys))
    parts = {k: split_key(k, profile_keys) for k in keys}
    plain = {k: _base(parts[k][2]) for k in keys}
    out: dict[str, str] = {}
    for k in keys:
        name = plain[k]
        kind, host, _ = parts[k]
        if sum(1 for v in plain.values() if v == name) > 1 and kind:
            same_kind = [o for o in keys if plain[o] == name and parts[o][0] == kind]
            name = f"{kind}/{name}" if len(same_kind) == 1 else f"{kind}@{host}/{name}"
        out[k] = name
    short = {k: elide(v) for k, v in out.items()}
    if len(set(short.values())) == len(short):
        return short
    return {k: v if list(short.values()).count(short[k]) == 1 else out[k] for k, v in short.items()}


__all__ = ["MAX_NAME", "elide", "model_id", "short_names"]
