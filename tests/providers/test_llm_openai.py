"""The `openai` LLM module against a fake OpenAI server speaking real SSE over HTTP."""

from __future__ import annotations


import pytest
import trio

from bridge.providers.base import LLM, ChatMessage, ConfigError, LLMRequest, ProviderError
from bridge.providers.llm import openai_chat
from bridge.providers.registry import ModuleSpec, create_provider
from tests.fakes.openai_chat import fake_openai_chat
from tests.refused_port import refused_port

KEY = "sk-test-SECRET-4242"


def request(text: str = "Hello, who are you?", **options: object) -> LLMRequest:
    return LLMRequest(
        messages=[
            ChatMessage("system", "You are Ava, an innkeeper."),
            ChatMessage("user", text, name="player"),
        ],
        new_message=text,
        character="ava",
        options=options,
    )


def make(options: dict[str, object]) -> openai_chat.OpenAIChatLLM:
    llm = create_provider(ModuleSpec("gpt", "llm", "openai", options))
    assert isinstance(llm, openai_chat.OpenAIChatLLM)
    return llm


async def collect(llm: LLM, req: LLMRequest | None = None) -> list[str]:
    async with llm.stream(req or request()) as deltas:
        return [d async for d in deltas]


async def test_streamed_deltas_join_to_the_reply_and_request_is_well_formed() -> None:
    reply = "Welcome to the Prancing Pony, stranger. What'll it be?"
    async with fake_openai_chat(reply=reply, api_key=KEY) as server:
        llm = make(server.options(api_key=KEY, temperature=0.4, max_tokens=64))
        assert isinstance(llm, LLM)
        try:
            deltas = await collect(llm)
        finally:
            await llm.aclose()
    assert "".join(deltas) == reply
    assert len(deltas) >= 5  # really streamed, not one blob
    [req] = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = req.json()
    assert body["model"] == "gpt-fake"
    assert body["stream"] is True
    assert body["temperature"] == 0.4
    assert body["max_tokens"] == 64
    assert body["messages"] == [
        {"role": "system", "content": "You are Ava, an innkeeper."},
        {"role": "user", "content": "Hello, who are you?", "name": "player"},
    ]


async def test_request_options_override_config_and_extra_body_is_merged() -> None:
    async with fake_openai_chat(api_key=None) as server:
        llm = make(server.options(temperature=0.9, extra_body={"top_k": 20, "keep_alive": "5m"}))
        await collect(llm, request(temperature=0.1, max_tokens=7))
        await llm.aclose()
    body = server.requests[0].json()
    assert body["temperature"] == 0.1
    assert body["max_tokens"] == 7
    assert body["top_k"] == 20 and body["keep_alive"] == "5m"


async def test_compatible_server_needs_no_key_and_env_key_is_not_leaked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-users-real-key")
    async with fake_openai_chat(reply="Hi!", api_key=None) as server:
        llm = make({"base_url": server.url, "model": "llama3"})
        assert "".join(await collect(llm)) == "Hi!"
        await llm.aclose()
    auth = server.requests[0].headers.get("authorization", "")
    assert "sk-users-real-key" not in auth
    assert server.requests[0].json()["model"] == "llama3"


def test_openai_itself_requires_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="api_key"):
        openai_chat.create(ModuleSpec("gpt", "llm", "openai", {"model": "gpt-4o-mini"}))
    with pytest.raises(ConfigError, match="base_url"):
        openai_chat.create(ModuleSpec("gpt", "llm", "openai", {"base_url": "localhost:11434", "api_key": "x"}))


@pytest.mark.parametrize(("status", "message"), [(401, "Incorrect API key provided: {key}."), (400, "model `nope` does not exist"), (500, "The server had an error")])
async def test_http_errors_become_backend_error_with_the_servers_message(status: int, message: str) -> None:
    text = message.format(key=KEY)
    async with fake_openai_chat(fault="error", error_status=status, error_message=text, api_key=KEY) as server:
        llm = make(server.options(api_key=KEY))
        with pytest.raises(ProviderError) as info:
            await collect(llm)
        await llm.aclose()
    err = info.value
    assert err.code == "backend_error"
    assert f"HTTP {status}" in err.message
    assert text.replace(KEY, "***") in err.message
    assert KEY not in err.message and KEY not in str(err)
    assert len(server.requests) == 1  # 4xx/500 are not retried


async def test_429_with_retry_after_is_retried_then_succeeds() -> None:
    async with fake_openai_chat(reply="Patience pays.", fault="rate_limit", fault_times=2, retry_after=0.1) as server:
        llm = make(server.options(max_retries=2))
        start = trio.current_time()
        text = "".join(await collect(llm))
        elapsed = trio.current_time() - start
        await llm.aclose()
    assert text == "Patience pays."
    assert len(server.requests) == 3
    assert elapsed >= 0.2  # it honoured Retry-After twice


async def test_429_retries_are_bounded() -> None:
    async with fake_openai_chat(fault="rate_limit", fault_times=100, retry_after=0.02) as server:
        llm = make(server.options(max_retries=2))
        with pytest.raises(ProviderError) as info:
            await collect(llm)
        await llm.aclose()
    assert len(server.requests) == 3  # first try + 2 retries
    assert info.value.code == "backend_error"
    assert "429" in info.value.message and "Rate limit reached" in info.value.message
    assert info.value.retry_after == pytest.approx(0.02)


async def test_retry_after_above_the_cap_is_not_waited_for() -> None:
    async with fake_openai_chat(fault="rate_limit", fault_times=1, retry_after=30) as server:
        llm = make(server.options(max_retries=3, max_retry_after=1))
        with trio.fail_after(2):
            with pytest.raises(ProviderError):
                await collect(llm)
        await llm.aclose()
    assert len(server.requests) == 1


async def test_503_is_backend_unavailable_after_retries() -> None:
    async with fake_openai_chat(fault="rate_limit", error_status=503, fault_times=100, retry_after=0) as server:
        llm = make(server.options(max_retries=1))
        with pytest.raises(ProviderError) as info:
            await collect(llm)
        await llm.aclose()
    assert info.value.code == "backend_unavailable"
    assert len(server.requests) == 2


async def test_connection_refused_is_backend_unavailable() -> None:
    with refused_port() as port:
        llm = make({"base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "connect_timeout": 1})
        with pytest.raises(ProviderError) as info:
            await collect(llm)
        await llm.aclose()
    assert info.value.code == "backend_unavailable"
    assert "cannot reach" in info.value.message


@pytest.mark.parametrize("fault", ["hang", "hang_headers"])
async def test_a_hung_server_times_out(fault: str) -> None:
    async with fake_openai_chat(fault=fault) as server:
        llm = make(server.options(timeout=0.3))
        start = trio.current_time()
        with trio.fail_after(3):
            with pytest.raises(ProviderError) as info:
                await collect(llm)
        await llm.aclose()
    assert info.value.code == "timeout"
    assert 0.25 <= trio.current_time() - start < 2


async def test_stream_dropped_mid_reply_is_backend_error_after_partial_text() -> None:
    reply = "One two three four five six seven eight."
    async with fake_openai_chat(reply=reply, fault="drop") as server:
        llm = make(server.options())
        got: list[str] = []
        with pytest.raises(ProviderError) as info:
            async with llm.stream(request()) as deltas:
                async for delta in deltas:
                    got.append(delta)
        await llm.aclose()
    assert info.value.code == "backend_error"
    assert "dropped" in info.value.message
    assert got and reply.startswith("".join(got)) and "".join(got) != reply


@pytest.mark.parametrize(("fault", "words"), [("malformed", "malformed"), ("stream_error", "had an error")])
async def test_broken_stream_content_is_backend_error(fault: str, words: str) -> None:
    async with fake_openai_chat(fault=fault) as server:
        llm = make(server.options())
        with pytest.raises(ProviderError) as info:
            await collect(llm)
        await llm.aclose()
    assert info.value.code == "backend_error"
    assert words in info.value.message


async def test_empty_reply_is_backend_error() -> None:
    async with fake_openai_chat(fault="empty") as server:
        llm = make(server.options())
        with pytest.raises(ProviderError) as info:
            await collect(llm)
        await llm.aclose()
    assert info.value.code == "backend_error"
    assert "empty reply" in info.value.message


@pytest.mark.parametrize("where", ["reading", "consumer_busy"])
async def test_cancelling_mid_stream_closes_the_upstream_connection(where: str) -> None:
    """Cancelled either while waiting for a delta, or while the turn does something else
    with one (speaking it, say): the upstream connection must close in both cases."""
    reply = " ".join(f"word{i}" for i in range(200))
    async with fake_openai_chat(reply=reply, tokens_per_s=40) as server:
        llm = make(server.options())
        got: list[str] = []
        kept = []  # hold the iterator: garbage collection must not be what closes the stream
        with trio.move_on_after(5) as outer:
            with trio.CancelScope() as turn:
                async with llm.stream(request()) as deltas:
                    kept.append(deltas)
                    async for delta in deltas:
                        got.append(delta)
                        if len(got) == 3:
                            turn.cancel()
                            if where == "consumer_busy":
                                await trio.sleep_forever()
            assert turn.cancelled_caught
            # The fake keeps writing a token every 25 ms; it must find the client gone.
            await server.client_gone.wait()
        assert not outer.cancelled_caught, "the fake never saw the client close"
        await llm.aclose()
    assert len(got) == 3
    assert server.early_closes == 1
    assert server.watch.completed == 0


async def test_slow_first_token_and_pacing_are_respected() -> None:
    async with fake_openai_chat(reply="a b c d e", first_token_delay=0.2, tokens_per_s=50) as server:
        llm = make(server.options())
        start = trio.current_time()
        stamps: list[float] = []
        async with llm.stream(request()) as deltas:
            async for _ in deltas:
                stamps.append(trio.current_time() - start)
        await llm.aclose()
    assert stamps[0] >= 0.2
    assert stamps[-1] - stamps[0] >= 4 / 50 * 0.9
