"""One client connection: the thin trio layer around `ProtocolSession`.

Three kinds of task live in the connection's nursery: the reader (this module's `run`
loop: frames in, requests dispatched), the writer (`Outbox.run_writer`), and one task per
entity (`Entity.run`), under which each turn runs. Leaving the nursery, for whatever
reason, cancels them all: a disconnect leaves nothing of the connection running.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import trio
from websockets.exceptions import ConnectionClosed

from bridge.character.entity import Entity
from bridge.character.listener import Listener
from bridge.character.ports import ClientGone
from bridge.character.runtime import CharacterRuntime
from bridge.character.turns import handler_for
from bridge.config import CharacterConfig, parse_character
from bridge.protocol.envelope import Event
from bridge.protocol.errors import CloseCode, ErrorCode, ProtocolError
from bridge.protocol.events import PROTOCOL_VERSION
from bridge.protocol.session import ProtocolSession
from bridge.providers.base import ConfigError
from bridge.server.app import BridgeApp
from bridge.server.client_socket import ClientSocket
from bridge.server.guard import peer_of
from bridge.server.history_page import DEFAULT_LIMIT, MAX_LIMIT, fit_page
from bridge.server.outbox import Outbox
from bridge.server.ws_write import send_frames
from bridge.world.engine import EngineRequests
from bridge.world import scenes
from bridge.world.entity_world import EntityWorld

log = logging.getLogger(__name__)

DEFAULT_AUDIO_OUT = {"encoding": "pcm_s16le", "sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}
DEFAULT_AUDIO_IN = {"encoding": "pcm_s16le", "sample_rate": 16000}


class Connection(ClientSocket):
    def __init__(self, app: BridgeApp, ws: Any) -> None:
        super().__init__(app, ws)
        self.session = ProtocolSession(
            app.schemas, app.config.limits, trio.current_time, token=app.config.server.token
        )
        self.outbox = Outbox(
            self.session,
            app.config.limits.outbound_queue,
            self.abort,
            stall_timeout=app.config.limits.client_stall_ms / 1000,
            inspect=app.sent,
        )
        self.entities: dict[str, Entity] = {}
        self.engine_requests = EngineRequests(self.outbox)
        self.session_id = uuid.uuid4().hex
        self._errors = 0
        self._close_code: int | None = None

    # -------------------------------------------------------------- lifecycle

    def _close_entities(self) -> None:
        for entity in list(self.entities.values()):
            self.app.scenes.leave((self.session_id, entity.name))
            entity.close()

    async def _after_close(self) -> None:
        if self._close_code is not None:
            with trio.move_on_after(2) as scope:
                scope.shield = True
                await self.ws.aclose(self._close_code)

    async def _send(self, items: list[Any]) -> None:
        await send_frames(self.ws, items)

    def abort(self) -> None:
        """Drop a client that does not read: no close handshake, the socket is closed under it."""
        self._close_code = None
        super().abort()

    async def _read(self) -> None:
        limits = self.app.config.limits
        with trio.move_on_after(limits.hello_timeout_s) as hello_scope:
            while not self.session.greeted:
                if not await self._receive_one():
                    return
        if hello_scope.cancelled_caught:
            self._close_code = CloseCode.POLICY_VIOLATION
            return
        while await self._receive_one():
            pass

    async def _receive_one(self) -> bool:
        """Handle one frame; False when the connection is over."""
        try:
            data = await self.ws.recv()
        except ConnectionClosed:
            return False
        event: Event | None = None
        try:
            event = self.session.receive(data)
            await self._dispatch(event)
        except ProtocolError as exc:
            self._errors += 1
            framing = self.session.framing_for(data)
            if exc.code is ErrorCode.UNAUTHORIZED:  # logged (without the token) and slowed down
                await trio.sleep(self.app.auth.failed(peer_of(self.ws)))
            try:
                await self.outbox.put(self.session.error_event(exc, self._errors), framing)
            except ClientGone:
                return False
            if exc.close is not None:
                self._close_code = exc.close
                return False
        except ClientGone:
            return False
        except Exception as exc:  # a bug of ours must cost one request, not the session
            log.exception("handling a frame failed")
            self._errors += 1
            crash = ProtocolError(  # answered in kind when it was a request: its one final reply
                ErrorCode.INTERNAL,
                f"internal error: {type(exc).__name__}",
                event_type=event.type if event is not None else None,
                event_id=event.id if event is not None else None,
                entity=event.entity if event is not None else None,
            )
            self.outbox.put_nowait(self.session.error_event(crash, self._errors), self.session.framing_for(data))
        return True

    # -------------------------------------------------------------- dispatch

    async def _dispatch(self, event: Event) -> None:
        if event.status != "new":  # the session lets through only answers to our requests
            self.engine_requests.answer(event)
            return
        handler = getattr(self, "_on_" + event.type.replace(".", "_"))
        reply = await handler(event)
        if reply is not None:
            await self.outbox.put(reply)

    def _entity(self, event: Event) -> Entity:
        entity = self.entities.get(event.entity or "")
        if entity is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_ENTITY,
                f"no entity {event.entity!r} on this connection; send entity.init first",
                event_type=event.type,
                event_id=event.id,
                entity=event.entity,
            )
        return entity

    async def _on_session_hello(self, event: Event) -> Event:
        hello = self.session.hello or {}
        audio_out = {**DEFAULT_AUDIO_OUT, **(hello.get("audio_out") or {})}
        audio_in = {**DEFAULT_AUDIO_IN, **(hello.get("audio_in") or {})}
        hello["audio_out"], hello["audio_in"] = audio_out, audio_in
        if self.app.config.server.scope_mode == "connection":  # the bridge picks; the client cannot
            hello["scope"] = "connection:" + self.session_id
        return event.reply(
            "success",
            {
                "session": self.session_id,
                "server": self.app.server_name,
                "protocol": PROTOCOL_VERSION,
                "characters": sorted(self.app.config.characters),
                "limits": self.app.config.limits.public(),
                "audio_out": audio_out,
                "audio_in": audio_in,
            },
        )

    def _character_from(self, event: Event) -> CharacterConfig:
        spec = (event.payload or {}).get("character")
        if isinstance(spec, str):
            found = self.app.character(spec)
            if found is None:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_CHARACTER,
                    f"no character {spec!r}; configured: {', '.join(sorted(self.app.config.characters))}",
                    event_type=event.type,
                    event_id=event.id,
                    entity=event.entity,
                )
            return found
        assert isinstance(spec, dict)  # the schema allows a string or a map
        table = {k: v for k, v in spec.items() if k != "name"}
        try:
            if not self.app.config.inline.enabled:
                raise ConfigError("this bridge does not accept inline characters ([inline_characters] enabled = false); name a configured one")
            return parse_character(str(spec["name"]), table, self.app.config.modules, "inline character", inline=self.app.config.inline)
        except ConfigError as exc:
            raise ProtocolError(ErrorCode.BAD_EVENT, str(exc), event_type=event.type, event_id=event.id, entity=event.entity) from None

    async def _on_entity_init(self, event: Event) -> Event:
        name = event.entity or ""
        if name in self.entities:
            raise ProtocolError(
                ErrorCode.ENTITY_EXISTS, f"entity {name!r} already exists; remove it first", event_type=event.type, event_id=event.id, entity=name
            )
        if len(self.entities) >= self.app.config.limits.max_entities:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"this connection already has {len(self.entities)} entities (the limit)",
                event_type=event.type,
                event_id=event.id,
                entity=name,
            )
        character = self._character_from(event)
        runtime = CharacterRuntime(self.app, character, self.session.hello or {})
        runtime.world = EntityWorld(name, self.engine_requests, character.options, character.display_name)
        entity = Entity(name, runtime, self.outbox, turn_policy=character.turn_policy)
        assert self._nursery is not None
        await self._nursery.start(entity.run, name=f"entity:{name}")
        self.entities[name] = entity
        return event.reply(
            "success",
            {"character": character.name, "display_name": character.display_name, "modules": runtime.modules},
        )

    async def _on_entity_remove(self, event: Event) -> Event:
        entity = self._entity(event)
        del self.entities[entity.name]
        self.app.scenes.leave((self.session_id, entity.name))
        entity.close()
        return event.reply("success", {})

    async def _on_scene_loaded(self, event: Event) -> Event:
        return event.reply("success", {"entities": sorted(self.entities)})

    async def _start_turn(self, event: Event) -> None:
        entity = self._entity(event)
        handler = handler_for(entity.runtime, event)
        entity.submit(event, handler)

    _on_user_utterance = _start_turn
    _on_tts_say = _start_turn

    async def _on_entity_interrupt(self, event: Event) -> Event:
        entity = self._entity(event)
        played = (event.payload or {}).get("played_ms")
        return event.reply("success", {"interrupted": entity.interrupt(played)})

    async def _on_world_event(self, event: Event) -> Event | None:
        entity = self._entity(event)
        payload = event.payload or {}
        try:
            entity.runtime.harmonizer.add_world_event(str(payload.get("text", "")), payload.get("actor"))
        except ValueError as exc:
            raise ProtocolError(ErrorCode.BAD_EVENT, str(exc), event_type=event.type, event_id=event.id, entity=event.entity) from None
        if payload.get("respond"):
            await self._start_turn(event)
            return None
        return event.reply("success", {})

    async def _on_playback_progress(self, event: Event) -> Event:
        return self._playback(event, done=False)

    async def _on_playback_done(self, event: Event) -> Event:
        return self._playback(event, done=True)

    def _playback(self, event: Event, *, done: bool) -> Event:
        entity = self._entity(event)
        payload = event.payload or {}
        known = entity.runtime.playback(str(payload.get("speech")), payload.get("played_ms"), done)
        return event.reply("success", {"known": known})

    async def _on_chat_history(self, event: Event) -> Event:
        entity = self._entity(event)
        runtime = entity.runtime
        payload = event.payload or {}
        limit = min(int(payload.get("limit") or DEFAULT_LIMIT), MAX_LIMIT)  # the schema bounds both
        memory = await runtime.memory()
        messages = await memory.recent(runtime.name, runtime.scope, limit + 1, payload.get("before"))
        limits = self.app.config.limits
        return fit_page(event, messages, limit, limits.max_text_chars, limits.max_frame_bytes, lambda e: len(self.session.encode(e)))

    async def _on_chat_clear(self, event: Event) -> Event:
        entity = self._entity(event)
        runtime = entity.runtime
        memory = await runtime.memory()
        return event.reply("success", {"cleared": await memory.clear(runtime.name, runtime.scope)})

    def _listener(self, event: Event) -> Listener:
        entity = self._entity(event)
        if entity.listener is None:
            audio_in = (self.session.hello or {}).get("audio_in") or DEFAULT_AUDIO_IN
            entity.listener = Listener(entity, int(audio_in.get("sample_rate", 16000)), self.app.config.limits.max_audio_buffer_s)
        return entity.listener

    async def _on_stt_listen_start(self, event: Event) -> Event:
        return await self._listener(event).start(event)

    async def _on_stt_listen_stop(self, event: Event) -> Event:
        return await self._listener(event).stop(event)

    async def _on_stt_audio(self, event: Event) -> None:
        await self._listener(event).audio(event)

    async def _on_stt_transcribe(self, event: Event) -> None:
        # Transcription takes a while: run it in the entity's nursery, not in the reader.
        listener = self._listener(event)
        entity = self._entity(event)

        async def run() -> None:
            try:
                reply = await listener.transcribe(event)
            except ProtocolError as exc:
                reply = self.session.error_event(exc, 0)
            except Exception as exc:  # a bug of ours: still this request's one final reply
                log.exception("stt.transcribe failed")
                reply = event.error_reply(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}")
            self.outbox.put_nowait(reply)

        assert entity.nursery is not None
        entity.nursery.start_soon(run, name=f"stt.transcribe:{entity.name}")

    def _world(self, event: Event) -> EntityWorld:
        world = self._entity(event).runtime.world
        assert isinstance(world, EntityWorld)  # every entity gets one at entity.init
        return world

    async def _on_movement_actions(self, event: Event) -> Event:
        world = self._world(event)
        world.register_actions((event.payload or {}).get("actions", []))
        return event.reply("success", {"actions": sorted(world.catalog.actions)})

    async def _on_movement_scene(self, event: Event) -> Event:
        world = self._world(event)
        payload = event.payload or {}
        world.update_scene(payload)
        if payload.get("scene"):
            entity = self._entity(event)
            member = scenes.SceneMember((self.session_id, entity.name), entity, scenes.position_of(world.own_position()))
            scene = self.app.scenes.join(self.scope, str(payload["scene"]), member)
            return event.reply("success", {"scene": scene.name, "members": [m.entity_name for m in scene.members.values()]})
        return event.reply("success", {})


    # -------------------------------------------------------------- scenes

    @property
    def scope(self) -> str:
        return str((self.session.hello or {}).get("scope") or "default")

    def _bad(self, event: Event, message: str) -> ProtocolError:
        return ProtocolError(ErrorCode.BAD_EVENT, message, event_type=event.type, event_id=event.id, entity=event.entity)

    async def _on_scene_join(self, event: Event) -> Event:
        entity = self._entity(event)
        payload = event.payload or {}
        member = scenes.SceneMember((self.session_id, entity.name), entity, scenes.position_of(payload.get("position")))
        scene = self.app.scenes.join(self.scope, str(payload["scene"]), member)
        return event.reply("success", {"scene": scene.name, "members": [m.entity_name for m in scene.members.values()]})

    async def _on_scene_leave(self, event: Event) -> Event:
        entity = self._entity(event)
        name = (event.payload or {}).get("scene")
        left = self.app.scenes.leave((self.session_id, entity.name), str(name) if name else None)
        return event.reply("success", {"left": left})

    def _scene(self, event: Event) -> scenes.Scene:
        name = str((event.payload or {}).get("scene"))
        scene = self.app.scenes.get(self.scope, name)
        if scene is None:
            raise self._bad(event, f"no scene {name!r} in scope {self.scope!r}; entities join one with scene.join first")
        return scene

    def _run_scene(self, event: Event, work: Any) -> None:
        """Run a scene request in the connection's nursery; it ends with exactly one reply."""

        async def run() -> None:
            try:
                reply = event.reply("success", await work)
            except ValueError as exc:
                reply = event.error_reply(ErrorCode.BAD_EVENT, str(exc))
            except Exception as exc:  # a bug of ours: one request fails, not the session
                log.exception("%s %s failed", event.type, event.id)
                reply = event.error_reply(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}")
            try:
                await self.outbox.put(reply)
            except ClientGone:
                pass

        assert self._nursery is not None
        self._nursery.start_soon(run, name=f"{event.type}:{event.id}")

    async def _on_scene_utterance(self, event: Event) -> Event | None:
        scene = self._scene(event)
        await self.outbox.put(event.reply("pending"))
        self._run_scene(event, scenes.say(self.app.scenes, scene, event, self.session_id))
        return None

    async def _on_scene_converse(self, event: Event) -> Event | None:
        scene = self._scene(event)
        participants = (event.payload or {}).get("participants") or []
        if len(participants) < 2:
            raise self._bad(event, "scene.converse needs at least two participants")
        await self.outbox.put(event.reply("pending"))
        self._run_scene(event, scenes.converse(self.app.scenes, scene, event, self.session_id))
        return None
