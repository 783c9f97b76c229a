"""Which transport a client gets: soaktui's own HTTP/1.1 (providers/http1.py) only where it applies.

The transport's behaviour on the wire is tested in test_client.py, where every test runs over both
transports against real loopback servers."""

from __future__ import annotations

import asyncio

import pytest

from soaktui.providers.client import ChatClient
from soaktui.providers.http1 import lean_applies

pytestmark = pytest.mark.unit

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY")


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_plain_http_without_a_proxy_is_lean_and_https_is_not(no_proxy_env):
    assert lean_applies("http://192.168.1.20:11434", trust_env=True)
    assert lean_applies("http://127.0.0.1:8080", trust_env=True)
    assert not lean_applies("https://models.example.com", trust_env=True)
    assert not lean_applies("HTTPS://models.example.com", trust_env=False)


def test_a_proxy_in_the_environment_keeps_httpx_unless_the_host_bypasses_it(no_proxy_env):
    no_proxy_env.setenv("http_proxy", "http://proxy.corp:3128")
    assert not lean_applies("http://gpu-box.corp:8000", trust_env=True)
    assert lean_applies("http://gpu-box.corp:8000", trust_env=False)  # the client ignores the environment
    assert lean_applies("http://localhost:1234", trust_env=True)  # loopback never goes via a proxy
    no_proxy_env.setenv("no_proxy", "gpu-box.corp")
    assert lean_applies("http://gpu-box.corp:8000", trust_env=True)


def test_the_client_says_which_transport_it_uses_and_rejects_an_unknown_one(no_proxy_env):
    async def transports() -> list[str]:
        clients = [
            ChatClient("http://127.0.0.1:9"),
            ChatClient("https://127.0.0.1:9"),
            ChatClient("http://127.0.0.1:9", transport="httpx"),
            ChatClient("http://127.0.0.1:9", transport="lean"),
            ChatClient("https://127.0.0.1:9", transport="lean"),  # lean speaks plain http only
        ]
        for c in clients:
            await c.aclose()
        return [c.transport for c in clients]

    assert asyncio.run(transports()) == ["lean", "httpx", "httpx", "lean", "httpx"]
    with pytest.raises(ValueError, match="auto, lean, httpx"):
        ChatClient("http://127.0.0.1:9", transport="h2")
