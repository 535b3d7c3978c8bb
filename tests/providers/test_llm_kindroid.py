"""The `kindroid` LLM module against a fake Kindroid API (plain-text streaming)."""

from __future__ import annotations

import socket

import pytest
import trio

from bridge.providers.base import LLM, ChatMessage, ConfigError, LLMRequest, ProviderError
from bridge.providers.llm import kindroid
from bridge.providers.registry import ModuleSpec, create_provider
from tests.fakes.kindroid import fake_kindroid


def request(text: str = "I'm back from the mountains!") -> LLMRequest:
    return LLMRequest(
        messages=[
            ChatMessage("system", "LONG HARMONIZER PROMPT"),
            ChatMessage("assistant", "earlier reply"),
            ChatMessage("user", text),
        ],
        new_message=text,
        character="kin",
    )


def make(options: dict[str, object]) -> kindroid.KindroidLLM:
    llm = create_provider(ModuleSpec("kin", "llm", "kindroid", options))
    assert isinstance(llm, kindroid.KindroidLLM)
    return llm


async def collect(llm: LLM, req: LLMRequest | None = None) -> list[str]:
    async with llm.stream(req or request()) as deltas:
        return [d async for d in deltas]


async def fails(llm: LLM) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await collect(llm)
    return info.value


@pytest.mark.parametrize("chunk_bytes", [None, 1, 5])
async def test_streamed_text_joins_to_the_reply_even_when_characters_are_cut(chunk_bytes: int | None) -> None:
    reply = "Welcome home! Did you bring me a crêpe? 🥞 I've been waiting ages."
    async with fake_kindroid(reply=reply, chunk_bytes=chunk_bytes) as server:
        llm = make(server.options())
        assert isinstance(llm, LLM)
        deltas = await collect(llm)
        await llm.aclose()
    assert "".join(deltas) == reply
    assert "\ufffd" not in "".join(deltas)
    assert len(deltas) >= 2


async def test_only_the_new_message_is_sent_with_bearer_auth() -> None:
    async with fake_kindroid() as server:
        llm = make(server.options())
        await collect(llm)
        await llm.aclose()
    [req] = server.requests
    assert req.path == "/v1/send-message"
    assert req.headers["authorization"] == f"Bearer {server.api_key}"
    assert req.json() == {"ai_id": server.ai_id, "message": "I'm back from the mountains!", "stream": True}


async def test_non_streaming_mode() -> None:
    async with fake_kindroid(reply="All in one go.") as server:
        llm = make(server.options(stream=False))
        assert "".join(await collect(llm)) == "All in one go."
        await llm.aclose()
    assert server.requests[0].json()["stream"] is False


def test_config_needs_ai_id_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KINDROID_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ai_id"):
        kindroid.create(ModuleSpec("kin", "llm", "kindroid", {"api_key": "kn_x"}))
    with pytest.raises(ConfigError, match="KINDROID_API_KEY"):
        kindroid.create(ModuleSpec("kin", "llm", "kindroid", {"ai_id": "a", "api_key_env": "KINDROID_API_KEY"}))
    monkeypatch.setenv("KINDROID_API_KEY", "kn_from_env")
    llm = kindroid.create(ModuleSpec("kin", "llm", "kindroid", {"ai_id": "a", "api_key_env": "KINDROID_API_KEY"}))
    assert str(llm._client.base_url) == "https://api.kindroid.ai/v1/"


async def test_wrong_key_is_backend_error_without_the_key() -> None:
    async with fake_kindroid() as server:
        llm = make(server.options(api_key="kn_wrong_key_123"))
        err = await fails(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert "HTTP 401" in err.message and "invalid API key" in err.message
    assert "kn_wrong_key_123" not in err.message


@pytest.mark.parametrize(("status", "message"), [(400, "Message too long"), (403, "Subscription required"), (500, "Internal server error")])
async def test_plain_text_errors_carry_the_providers_words(status: int, message: str) -> None:
    async with fake_kindroid(fault="error", error_status=status, error_message=message) as server:
        llm = make(server.options())
        err = await fails(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert f"HTTP {status}: {message}" in err.message


async def test_429_is_retried_then_bounded() -> None:
    async with fake_kindroid(reply="Okay!", fault="rate_limit", fault_times=2, retry_after=0.05) as server:
        llm = make(server.options(max_retries=2))
        assert "".join(await collect(llm)) == "Okay!"
        await llm.aclose()
    assert len(server.requests) == 3
    async with fake_kindroid(fault="rate_limit", fault_times=50, retry_after=0.01) as server:
        llm = make(server.options(max_retries=1))
        err = await fails(llm)
        await llm.aclose()
    assert len(server.requests) == 2
    assert err.code == "backend_error" and "Too many requests" in err.message


async def test_connection_refused_is_backend_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = make({"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "kn_x", "ai_id": "a", "connect_timeout": 1})
    err = await fails(llm)
    await llm.aclose()
    assert err.code == "backend_unavailable"


@pytest.mark.parametrize("fault", ["hang", "hang_headers"])
async def test_a_hung_server_times_out(fault: str) -> None:
    async with fake_kindroid(fault=fault) as server:
        llm = make(server.options(timeout=0.3))
        with trio.fail_after(3):
            err = await fails(llm)
        await llm.aclose()
    assert err.code == "timeout"


async def test_dropped_stream_is_backend_error() -> None:
    async with fake_kindroid(fault="drop") as server:
        llm = make(server.options())
        err = await fails(llm)
        await llm.aclose()
    assert err.code == "backend_error" and "dropped" in err.message


@pytest.mark.parametrize("stream", [True, False])
async def test_empty_reply_is_backend_error(stream: bool) -> None:
    async with fake_kindroid(fault="empty") as server:
        llm = make(server.options(stream=stream))
        err = await fails(llm)
        await llm.aclose()
    assert err.code == "backend_error" and "empty reply" in err.message


@pytest.mark.parametrize("where", ["reading", "consumer_busy"])
async def test_cancelling_mid_stream_closes_the_upstream_connection(where: str) -> None:
    reply = " ".join(f"w{i}" for i in range(200))
    async with fake_kindroid(reply=reply, tokens_per_s=40) as server:
        llm = make(server.options())
        got: list[str] = []
        kept = []
        with trio.move_on_after(5) as outer:
            with trio.CancelScope() as turn:
                async with llm.stream(request()) as deltas:
                    kept.append(deltas)
                    async for delta in deltas:
                        got.append(delta)
                        if len(got) == 2:
                            turn.cancel()
                            if where == "consumer_busy":
                                await trio.sleep_forever()
            await server.client_gone.wait()
        assert not outer.cancelled_caught, "the fake never saw the client close"
        await llm.aclose()
    assert len(got) == 2 and server.watch.completed == 0


async def test_chat_break() -> None:
    async with fake_kindroid() as server:
        llm = make(server.options())
        await llm.chat_break("Hi again! What's new?")
        await llm.aclose()
    assert server.chat_breaks == [{"ai_id": server.ai_id, "greeting": "Hi again! What's new?"}]
    assert server.requests[0].path == "/v1/chat-break"
    assert server.requests[0].headers["authorization"] == f"Bearer {server.api_key}"


async def test_chat_break_error_is_backend_error() -> None:
    async with fake_kindroid() as server:
        llm = make(server.options(ai_id="someone-else"))
        with pytest.raises(ProviderError) as info:
            await llm.chat_break("Hello")
        await llm.aclose()
    assert info.value.code == "backend_error" and "AI not found" in info.value.message
