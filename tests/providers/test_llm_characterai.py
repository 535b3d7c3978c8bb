"""The `characterai` LLM module against a fake Character AI (REST + neo WebSocket) on 127.0.0.1."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio

from bridge.providers.base import LLM, ConfigError, LLMRequest, ProviderError
from bridge.providers.llm import characterai
from bridge.providers.llm.characterai import CumulativeText
from bridge.providers.registry import ModuleSpec, create_provider
from tests.fakes.characterai import FakeCharacterAI, cumulative_snapshots, fake_characterai

TEXT = "Do you have a room for the night?"


def make(cai: FakeCharacterAI, **options: Any) -> characterai.CharacterAILLM:
    llm = create_provider(ModuleSpec("cai", "llm", "characterai", cai.options(**{"timeout": 2, **options})))
    assert isinstance(llm, characterai.CharacterAILLM)
    return llm


async def ask(llm: characterai.CharacterAILLM, text: str = TEXT, scope: str = "default") -> list[str]:
    async with llm.stream(LLMRequest([], text, "innkeeper", scope=scope)) as deltas:
        return [d async for d in deltas]


async def failure(llm: characterai.CharacterAILLM) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await ask(llm)
    return info.value


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- happy path


async def test_cumulative_updates_become_suffix_deltas_and_the_wire_flow_is_right() -> None:
    reply = "Aye, one room left upstairs. Two silver, paid up front."
    async with fake_characterai(reply=reply, updates=4) as cai:
        llm = make(cai)
        assert isinstance(llm, LLM)
        deltas = await ask(llm)
        await llm.aclose()
        with trio.fail_after(2):
            await cai.wait_all_sockets_closed()

    snapshots = cumulative_snapshots(reply, 4)
    expected = [snapshots[0]] + [b[len(a):] for a, b in zip(snapshots, snapshots[1:])]
    assert deltas == expected  # each update's new suffix, nothing repeated
    assert "".join(deltas) == reply
    assert "NOT FOR YOU" not in "".join(deltas)  # another request's turn was skipped
    assert TEXT not in "".join(deltas)  # the echo of our own turn was skipped
    assert "Greetings" not in "".join(deltas)  # the new chat's greeting is not the reply
    assert cai.violations == []
    assert cai.commands == ["create_chat", "create_and_generate_turn"]
    turn = cai.received[1]["payload"]["turn"]
    assert turn["candidates"][0]["raw_content"] == TEXT
    assert turn["turn_key"]["chat_id"] == cai.chats[0]
    assert cai.rest_requests[0].path == "/chat/user/"
    assert cai.rest_requests[0].headers["authorization"] == f"Token {cai.token}"
    assert cai.handshake_headers[0]["Cookie"] == f'HTTP_AUTHORIZATION="Token {cai.token}"'


async def test_chat_is_created_once_per_scope_and_reused() -> None:
    async with fake_characterai(reply="Again.") as cai:
        llm = make(cai)
        assert await ask(llm, "one") == ["Again."]
        assert await ask(llm, "two") == ["Again."]
        assert await ask(llm, "three", scope="other-entity") == ["Again."]
        await llm.aclose()
    assert cai.commands == [
        "create_chat",
        "create_and_generate_turn",
        "create_and_generate_turn",
        "create_chat",
        "create_and_generate_turn",
    ]
    chats = [m["payload"]["turn"]["turn_key"]["chat_id"] for m in cai.received if m["command"] != "create_chat"]
    assert chats[0] == chats[1] != chats[2]
    assert len(cai.rest_requests) == 1  # the user id is fetched once
    assert cai.violations == []


async def test_configured_chat_id_skips_create_chat() -> None:
    async with fake_characterai(reply="Welcome back.", existing_chats=("chat-from-config",)) as cai:
        llm = make(cai, chat_id="chat-from-config")
        assert "".join(await ask(llm)) == "Welcome back."
        await llm.aclose()
    assert cai.commands == ["create_and_generate_turn"]
    assert cai.received[0]["payload"]["turn"]["turn_key"]["chat_id"] == "chat-from-config"
    assert cai.violations == []


async def test_without_greeting() -> None:
    async with fake_characterai(reply="Hm.") as cai:
        llm = make(cai, greeting=False)
        assert await ask(llm) == ["Hm."]
        await llm.aclose()
    assert cai.received[0]["payload"]["with_greeting"] is False


def test_cumulative_text_rewrites_are_not_re_emitted() -> None:
    text = CumulativeText()
    assert [text.feed(s) for s in ["", "Hel", "Hello", "Hello", "Hello world"]] == ["", "Hel", "lo", "", " world"]
    assert text.feed("Goodbye") == "" and text.rewrites == 1
    assert text.feed("Hello world!") == "!"


# ----------------------------------------------------------------------------- failures


async def test_neo_error_is_a_backend_error_with_the_comment() -> None:
    async with fake_characterai(fault="neo_error", fault_comment="Character is unavailable") as cai:
        llm = make(cai)
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert "Character is unavailable" in err.message
    assert cai.token not in err.message


async def test_token_echoed_by_the_service_is_scrubbed() -> None:
    token = "cai-token-echo-5566"
    async with fake_characterai(token=token, fault="neo_error", fault_comment=f"session {token} rate limited") as cai:
        llm = make(cai)
        err = await failure(llm)
        await llm.aclose()
    assert token not in err.message and token not in str(err)
    assert "session *** rate limited" in err.message


async def test_bad_token_is_refused_with_the_service_words_and_no_token() -> None:
    async with fake_characterai(fault="bad_token") as cai:
        llm = make(cai)
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert "HTTP 401" in err.message and "Invalid token." in err.message
    assert cai.token not in err.message  # the fake echoed the header back; we scrub it
    assert cai.sockets_opened == 0


async def test_socket_handshake_refusal_is_a_backend_error() -> None:
    async with fake_characterai(fault="ws_forbidden") as cai:
        llm = make(cai)
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_error"
    assert "refused the WebSocket connection with HTTP 403" in err.message
    assert cai.token not in err.message
    assert len(cai.rest_requests) == 1 and cai.sockets_opened == 0


async def test_hang_is_a_timeout() -> None:
    async with fake_characterai(fault="hang") as cai:
        llm = make(cai, timeout=0.3)
        start = trio.current_time()
        err = await failure(llm)
        elapsed = trio.current_time() - start
        await llm.aclose()
        with trio.fail_after(2):
            await cai.wait_all_sockets_closed()
    assert err.code == "timeout" and "waiting for the reply" in err.message
    assert 0.3 <= elapsed < 1.5


async def test_drop_mid_reply_is_a_backend_error_after_the_first_delta() -> None:
    async with fake_characterai(fault="drop", reply="one two three four", updates=4) as cai:
        llm = make(cai)
        got: list[str] = []
        with pytest.raises(ProviderError) as info:
            async with llm.stream(LLMRequest([], TEXT, "innkeeper")) as deltas:
                async for delta in deltas:
                    got.append(delta)
        await llm.aclose()
    assert got == ["one"]
    assert info.value.code == "backend_error"
    assert "Character AI dropped the connection" in info.value.message


async def test_empty_final_reply_is_a_backend_error() -> None:
    async with fake_characterai(reply="") as cai:
        llm = make(cai)
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_error" and "empty reply" in err.message


async def test_unreachable_socket_is_backend_unavailable() -> None:
    async with fake_characterai() as cai:
        llm = make(cai, ws_url=f"ws://127.0.0.1:{closed_port()}")
        err = await failure(llm)
        await llm.aclose()
    assert err.code == "backend_unavailable"
    assert cai.token not in err.message


# ----------------------------------------------------------------------------- cancellation


async def test_cancel_mid_reply_closes_the_socket() -> None:
    async with fake_characterai(reply="a b c d e f g h", updates=8, token_delay=0.2) as cai:
        llm = make(cai, timeout=5)
        got: list[str] = []
        with trio.move_on_after(5) as guard:
            async with trio.open_nursery() as nursery:

                async def consume() -> None:
                    async with llm.stream(LLMRequest([], TEXT, "innkeeper")) as deltas:
                        async for delta in deltas:
                            got.append(delta)
                            if len(got) == 2:
                                nursery.cancel_scope.cancel()

                nursery.start_soon(consume)
        assert not guard.cancelled_caught
        cancelled_at = trio.current_time()
        with trio.fail_after(1):
            await cai.wait_all_sockets_closed()  # the fake saw the socket go
        closed_after = trio.current_time() - cancelled_at
        await llm.aclose()
    assert got == ["a", " b"]
    assert cai.sockets_opened == cai.sockets_closed == 1
    assert closed_after < 0.5


# ----------------------------------------------------------------------------- config


def test_config_errors_say_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="character_id"):
        characterai.create(ModuleSpec("c", "llm", "characterai", {"token": "t"}))
    monkeypatch.delenv("CAI_TOKEN_FOR_TEST", raising=False)
    with pytest.raises(ConfigError, match="CAI_TOKEN_FOR_TEST"):
        characterai.create(ModuleSpec("c", "llm", "characterai", {"character_id": "x", "token_env": "CAI_TOKEN_FOR_TEST"}))
    monkeypatch.setenv("CAI_TOKEN_FOR_TEST", "from-env")
    llm = characterai.create(ModuleSpec("c", "llm", "characterai", {"character_id": "x", "token_env": "CAI_TOKEN_FOR_TEST"}))
    assert llm.ws_url == "wss://neo.character.ai/ws/" and llm.rest_url == "https://plus.character.ai"
