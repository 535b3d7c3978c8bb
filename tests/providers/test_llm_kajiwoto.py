"""The `kajiwoto` LLM module against a fake Kajiwoto (GraphQL + Socket.IO v4) on 127.0.0.1."""

from __future__ import annotations

import socket
from functools import partial
from typing import Any

import pytest
import trio

from bridge.providers.base import LLM, ConfigError, LLMRequest, ProviderError
from bridge.providers.llm import kajiwoto
from bridge.providers.registry import ModuleSpec, create_provider
from tests.fakes.kajiwoto import FakeKajiwoto, fake_kajiwoto

REQUEST = LLMRequest(messages=[], new_message="How was the harvest?", character="wanda")


def make(kaji: FakeKajiwoto, **options: Any) -> kajiwoto.KajiwotoLLM:
    llm = create_provider(ModuleSpec("kaji", "llm", "kajiwoto", kaji.options(**{"timeout": 2, **options})))
    assert isinstance(llm, kajiwoto.KajiwotoLLM)
    return llm


async def ask(llm: kajiwoto.KajiwotoLLM, text: str = REQUEST.new_message) -> list[str]:
    async with llm.stream(LLMRequest([], text, "wanda")) as deltas:
        return [d async for d in deltas]


async def failure(llm: kajiwoto.KajiwotoLLM) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await ask(llm)
    return info.value


def assert_no_secret(err: ProviderError, kaji: FakeKajiwoto) -> None:
    for secret in (kaji.password, kaji.auth_token):
        assert secret not in err.message and secret not in str(err)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- happy path


async def test_reply_streams_as_words_and_the_wire_flow_is_right() -> None:
    reply = "The harvest was good! *wags tail* We have apples."
    async with fake_kajiwoto(reply=reply, mood="HAPPY") as kaji:
        llm = make(kaji)
        assert isinstance(llm, LLM)
        deltas = await ask(llm)
        await llm.aclose()
        with trio.fail_after(2):
            await kaji.wait_all_sockets_closed()

    assert "".join(deltas) == reply
    assert len(deltas) == len(reply.split())  # streamed word by word, not in one lump
    assert kaji.violations == []  # secrets, userData, room version, socket id all checked
    assert kaji.actions == ["login", "subscribe", "chatEnter", "chatSend", "chatSubmit"]
    assert kaji.connect_payloads == [{"api_key": kaji.auth_token}]
    assert kaji.event("chatSend")[1]["message"]["message"] == REQUEST.new_message
    assert kaji.event("chatSubmit")[1]["messages"] == [REQUEST.new_message]
    assert kaji.pings_sent == 2 and kaji.pongs == 2  # Engine.IO heartbeats answered
    login = kaji.graphql_requests[0]
    assert login.method == "POST" and "login(" in login.json()["query"]
    assert llm.last_mood is not None and llm.last_mood.emotion == "happy"
    assert llm.last_pet_data is not None and llm.last_pet_data["mood"] == "HAPPY"


async def test_login_is_reused_and_each_turn_has_its_own_socket() -> None:
    async with fake_kajiwoto(reply="Again!", mood="SAD") as kaji:
        llm = make(kaji)
        assert await ask(llm, "one") == ["Again!"]
        assert await ask(llm, "two") == ["Again!"]
        await llm.aclose()
    assert len(kaji.graphql_requests) == 1
    assert kaji.sockets_opened == 2
    assert [args[1]["messages"] for name, args in kaji.events if name == "chatSubmit"] == [["one"], ["two"]]
    assert llm.last_mood is not None and llm.last_mood.emotion == "sad"
    assert kaji.violations == []


async def test_auth_token_logs_in_with_token_and_header() -> None:
    async with fake_kajiwoto(reply="Token works.") as kaji:
        options = {k: v for k, v in kaji.options().items() if k not in ("username", "password")}
        llm = create_provider(ModuleSpec("kaji", "llm", "kajiwoto", {**options, "auth_token": kaji.auth_token}))
        assert "".join(await ask(llm)) == "Token works."
        await llm.aclose()
    request = kaji.graphql_requests[0]
    assert "loginWithToken(" in request.json()["query"]
    assert request.headers["auth_token"] == kaji.auth_token
    assert kaji.violations == []


async def test_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with fake_kajiwoto(reply="Env ok.") as kaji:
        monkeypatch.setenv("KAJI_TEST_PASSWORD", kaji.password)
        options = {**kaji.options(), "password": None, "password_env": "KAJI_TEST_PASSWORD"}
        llm = create_provider(ModuleSpec("kaji", "llm", "kajiwoto", options))
        assert "".join(await ask(llm)) == "Env ok."
        await llm.aclose()


# ----------------------------------------------------------------------------- failures


async def test_login_failure_is_a_backend_error_with_the_service_message() -> None:
    async with fake_kajiwoto(fault="login_error") as kaji:
        llm = make(kaji)
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert "Incorrect username or password" in err.message
    assert kaji.sockets_opened == 0
    assert_no_secret(err, kaji)


async def test_wrong_password_is_refused_and_secret_kept_out_even_when_echoed() -> None:
    async with fake_kajiwoto(error_message="password 'hunter2-wrong' is not right") as kaji:
        llm = make(kaji, password="hunter2-wrong")
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert "hunter2-wrong" not in err.message
    assert "password '***' is not right" in err.message


async def test_graphql_http_error() -> None:
    async with fake_kajiwoto(fault="graphql_500") as kaji:
        llm = make(kaji)
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert "HTTP 500" in err.message and "Internal server error" in err.message


async def test_connect_refusal_is_a_backend_error_and_forces_a_fresh_login() -> None:
    async with fake_kajiwoto(fault="connect_refused", error_message="Token expired") as kaji:
        llm = make(kaji)
        first = await failure(llm)
        second = await failure(llm)
        await llm.aclose()
    for err in (first, second):
        assert err.code == "backend_error"
        assert "refused the socket connection: Token expired" in err.message
        assert_no_secret(err, kaji)
    assert len(kaji.graphql_requests) == 2  # the refused token was dropped
    assert kaji.actions == []


async def test_token_echoed_in_refusal_is_scrubbed() -> None:
    token = "kaji-token-echoed-1"
    async with fake_kajiwoto(fault="connect_refused", auth_token=token, error_message=f"bad key {token}") as kaji:
        llm = make(kaji)
        err = await failure(llm)
        await llm.aclose()
    assert kaji.auth_token not in err.message and "bad key ***" in err.message


async def test_hang_waiting_for_the_reply_is_a_timeout() -> None:
    async with fake_kajiwoto(fault="hang") as kaji:
        llm = make(kaji, timeout=0.3)
        start = trio.current_time()
        err = await failure(llm)
        elapsed = trio.current_time() - start
        await llm.aclose()
        with trio.fail_after(2):
            await kaji.wait_all_sockets_closed()
    assert err.code == "timeout"
    assert "waiting for the reply" in err.message
    assert 0.3 <= elapsed < 1.5


async def test_hang_during_login_is_a_timeout() -> None:
    async with fake_kajiwoto(fault="hang", fault_at="login") as kaji:
        llm = make(kaji, timeout=0.2)
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "timeout" and "login status" in err.message


@pytest.mark.parametrize("fault_at", ["subscribe", "chatSubmit"])
async def test_dropped_connection_is_a_backend_error(fault_at: str) -> None:
    async with fake_kajiwoto(fault="drop", fault_at=fault_at) as kaji:
        llm = make(kaji)
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert "Kajiwoto dropped the connection" in err.message
    assert_no_secret(err, kaji)


async def test_empty_reply_is_a_backend_error() -> None:
    async with fake_kajiwoto(reply="  ") as kaji:
        llm = make(kaji)
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_error" and "empty reply" in err.message


async def test_unreachable_socket_server_is_backend_unavailable() -> None:
    async with fake_kajiwoto() as kaji:
        llm = make(kaji, socket_url=f"ws://127.0.0.1:{closed_port()}/socket.io/")
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_unavailable"
    assert "cannot reach Kajiwoto" in err.message


async def test_socket_handshake_that_never_completes_is_a_timeout() -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()  # accept the TCP connection, never answer the upgrade

    async with fake_kajiwoto() as kaji, trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        llm = make(kaji, socket_url=f"ws://127.0.0.1:{port}/socket.io/", connect_timeout=0.2)
        err = await failure(llm)
        await llm.aclose()
        nursery.cancel_scope.cancel()
    assert err.code == "timeout" and "handshake" in err.message


async def test_unreachable_graphql_is_backend_unavailable() -> None:
    async with fake_kajiwoto() as kaji:
        llm = make(kaji, graphql_url=f"http://127.0.0.1:{closed_port()}/graphql")
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_unavailable"


# ----------------------------------------------------------------------------- cancellation


async def test_cancel_while_waiting_for_the_reply_closes_the_socket() -> None:
    async with fake_kajiwoto(fault="hang") as kaji:
        llm = make(kaji, timeout=30)
        with trio.move_on_after(5) as guard:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, llm)
                await kaji.submitted.wait()
                cancelled_at = trio.current_time()
                nursery.cancel_scope.cancel()
        assert not guard.cancelled_caught
        with trio.fail_after(1):
            await kaji.wait_all_sockets_closed()  # the fake saw the socket go
        closed_after = trio.current_time() - cancelled_at
        await llm.aclose()
    assert kaji.sockets_opened == kaji.sockets_closed == 1
    assert closed_after < 0.5


async def test_cancel_mid_reply_closes_the_socket() -> None:
    async with fake_kajiwoto(reply="one two three four") as kaji:
        llm = make(kaji)
        got: list[str] = []
        with trio.CancelScope() as scope:
            async with llm.stream(REQUEST) as deltas:
                async for delta in deltas:
                    got.append(delta)
                    scope.cancel()
                    await trio.sleep(0)  # a checkpoint: the cancel lands here, mid-reply
        with trio.fail_after(1):
            await kaji.wait_all_sockets_closed()
        await llm.aclose()
    assert got == ["one "]
    assert kaji.sockets_closed == 1


# ----------------------------------------------------------------------------- config


def test_config_errors_say_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="room_id"):
        kajiwoto.create(ModuleSpec("k", "llm", "kajiwoto", {"auth_token": "t"}))
    with pytest.raises(ConfigError, match="auth_token"):
        kajiwoto.create(ModuleSpec("k", "llm", "kajiwoto", {"room_id": "r", "username": "u"}))
    with pytest.raises(ConfigError, match="password"):
        kajiwoto.create(ModuleSpec("k", "llm", "kajiwoto", {"room_id": "r", "username": "u", "password_env": "NOPE_X"}))
