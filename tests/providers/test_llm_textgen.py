"""The `textgen` LLM module against a fake text-generation-webui (both stream flavours)."""

from __future__ import annotations

import socket

import pytest
import trio

from bridge.providers.base import LLM, ChatMessage, ConfigError, LLMRequest, ProviderError
from bridge.providers.llm import textgen
from bridge.providers.registry import ModuleSpec, create_provider
from tests.fakes.textgen import fake_textgen

KEY = "tgw-SECRET-key-777"


def request(text: str = "Any rooms free tonight?", **options: object) -> LLMRequest:
    return LLMRequest(
        messages=[ChatMessage("system", "You are Ava."), ChatMessage("user", text)],
        new_message=text,
        character="ava",
        options=options,
    )


def make(options: dict[str, object]) -> textgen.TextgenLLM:
    llm = create_provider(ModuleSpec("tg", "llm", "textgen", options))
    assert isinstance(llm, textgen.TextgenLLM)
    return llm


async def collect(llm: LLM, req: LLMRequest | None = None) -> list[str]:
    async with llm.stream(req or request()) as deltas:
        return [d async for d in deltas]


async def fails(llm: LLM) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await collect(llm)
    return info.value


@pytest.mark.parametrize("flavour", ["harmony", "upstream"])
@pytest.mark.parametrize("split", [None, 3, 1])
async def test_both_flavours_stream_the_reply_whatever_the_chunking(flavour: str, split: int | None) -> None:
    reply = "Café au lait ☕ for the naïve traveller — one silver, please."
    async with fake_textgen(reply=reply, flavour=flavour, split_writes=split) as server:
        llm = make(server.options())
        assert isinstance(llm, LLM)
        deltas = await collect(llm)
        await llm.aclose()
    assert "".join(deltas) == reply
    assert len(deltas) >= 5
    assert server.watch.completed == 1


async def test_request_carries_messages_sampling_and_the_servers_extras() -> None:
    async with fake_textgen(api_key=KEY) as server:
        llm = make(
            server.options(
                mode="chat-instruct",
                character="Ava",
                name1="Player",
                name2="Ava",
                preset="min_p",
                temperature=0.7,
                max_tokens=90,
                extra={"top_k": 40, "stream": False},
            )
        )
        await collect(llm, request(temperature=0.2))
        await llm.aclose()
    [req] = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = req.json()
    assert body["stream"] is True  # `extra` cannot switch streaming off
    assert body["messages"] == [
        {"role": "system", "content": "You are Ava."},
        {"role": "user", "content": "Any rooms free tonight?"},
    ]
    assert (body["mode"], body["character"], body["name1"], body["name2"], body["preset"]) == (
        "chat-instruct", "Ava", "Player", "Ava", "min_p",
    )
    assert body["temperature"] == 0.2 and body["max_tokens"] == 90 and body["top_k"] == 40


async def test_no_key_means_no_authorization_header_and_v1_suffix_is_accepted() -> None:
    async with fake_textgen(reply="Hi.") as server:
        llm = make({"base_url": server.url + "/v1/"})
        assert "".join(await collect(llm)) == "Hi."
        await llm.aclose()
    assert "authorization" not in server.requests[0].headers
    assert server.requests[0].path == "/v1/chat/completions"


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError, match="mode"):
        textgen.create(ModuleSpec("tg", "llm", "textgen", {"mode": "roleplay"}))
    with pytest.raises(ConfigError, match="base_url"):
        textgen.create(ModuleSpec("tg", "llm", "textgen", {"base_url": "127.0.0.1:5000"}))


async def test_detail_errors_become_backend_error_with_the_servers_words() -> None:
    async with fake_textgen(fault="error", error_status=500, error_message="No model is loaded.") as server:
        llm = make(server.options())
        err = await fails(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert "HTTP 500" in err.message and "No model is loaded." in err.message


async def test_rejected_key_is_not_echoed() -> None:
    async with fake_textgen(fault="error", error_status=403, error_message=f"API key {KEY} is not valid") as server:
        llm = make(server.options(api_key=KEY))
        err = await fails(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert KEY not in err.message and "is not valid" in err.message


async def test_429_is_retried_after_retry_after_and_bounded() -> None:
    async with fake_textgen(reply="Fine.", fault="rate_limit", fault_times=1, retry_after=0.1) as server:
        llm = make(server.options(max_retries=1))
        start = trio.current_time()
        assert "".join(await collect(llm)) == "Fine."
        assert trio.current_time() - start >= 0.1
        await llm.aclose()
    assert len(server.requests) == 2
    async with fake_textgen(fault="rate_limit", fault_times=50, retry_after=0.01) as server:
        llm = make(server.options(max_retries=2))
        err = await fails(llm)
        await llm.aclose()
    assert len(server.requests) == 3
    assert err.code == "backend_error" and "Too many requests" in err.message


async def test_connection_refused_is_backend_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = make({"base_url": f"http://127.0.0.1:{port}", "connect_timeout": 1})
    err = await fails(llm)
    await llm.aclose()
    assert err.code == "backend_unavailable"


@pytest.mark.parametrize("fault", ["hang", "hang_headers"])
async def test_a_hung_server_times_out(fault: str) -> None:
    async with fake_textgen(fault=fault) as server:
        llm = make(server.options(timeout=0.3))
        start = trio.current_time()
        with trio.fail_after(3):
            err = await fails(llm)
        await llm.aclose()
    assert err.code == "timeout"
    assert 0.25 <= trio.current_time() - start < 2


async def test_dropped_stream_is_backend_error() -> None:
    async with fake_textgen(fault="drop") as server:
        llm = make(server.options())
        err = await fails(llm)
        await llm.aclose()
    assert err.code == "backend_error" and "dropped" in err.message


async def test_malformed_json_is_backend_error() -> None:
    async with fake_textgen(fault="malformed") as server:
        llm = make(server.options())
        err = await fails(llm)
        await llm.aclose()
    assert err.code == "backend_error" and "malformed" in err.message


@pytest.mark.parametrize("flavour", ["harmony", "upstream"])
async def test_empty_reply_is_backend_error(flavour: str) -> None:
    async with fake_textgen(fault="empty", flavour=flavour) as server:
        llm = make(server.options())
        err = await fails(llm)
        await llm.aclose()
    assert err.code == "backend_error" and "empty reply" in err.message


@pytest.mark.parametrize("where", ["reading", "consumer_busy"])
async def test_cancelling_mid_stream_closes_the_upstream_connection(where: str) -> None:
    reply = " ".join(f"w{i}" for i in range(200))
    async with fake_textgen(reply=reply, tokens_per_s=40) as server:
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


async def test_history_of_a_character() -> None:
    saved = [
        {"role": "user", "content": "Hello Ava"},
        {"role": "assistant", "content": "Welcome back!"},
    ]
    async with fake_textgen(histories={"Ava": saved}, user_name="Player") as server:
        llm = make(server.options(character="Ava"))
        history = await llm.history()
        with pytest.raises(ProviderError) as info:
            await llm.history("Bob")
        await llm.aclose()
    assert history.messages == [ChatMessage("user", "Hello Ava"), ChatMessage("assistant", "Welcome back!")]
    assert history.character_name == "Ava" and history.user_name == "Player"
    assert history.unique_id and history.unique_id.startswith("ava-")
    assert server.requests[0].path == "/v1/history" and server.requests[0].query == {"character": ["Ava"]}
    assert info.value.code == "backend_error" and "Character 'Bob' not found" in info.value.message


async def test_history_needs_a_character() -> None:
    llm = make({})
    with pytest.raises(ConfigError, match="character"):
        await llm.history()
    await llm.aclose()
