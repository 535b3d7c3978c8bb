"""The Harmony Link listener: thin socket glue around `bridge.compat.harmony_link.Translator`.

Started by `serve_bridge` only when `[compat.harmony_link] enabled = true`, and imported only
then, so EEP/1 connections pay nothing for it when it is off. Each plugin socket drives one
entity, built exactly as `entity.init` builds one (`CharacterRuntime`, `EntityWorld`,
`Entity`) and driven through the same turns (`handler_for`, `Entity.submit`). The socket's
one writer is our `Outbox`, whose "session" here encodes an EEP/1 event into the plugin
events it becomes; a WAV file is written just before the event that names it is sent.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.server import Server, serve

from bridge.character.entity import Entity
from bridge.character.listener import Listener
from bridge.character.ports import ClientGone
from bridge.character.runtime import CharacterRuntime
from bridge.character.turns import handler_for
from bridge.compat.harmony_link import (
    Answer,
    DeleteFile,
    HarmonyLinkError,
    InitEntity,
    Listen,
    MicrophoneData,
    Send,
    Step,
    Submit,
    Translator,
    error_event,
    parse_event,
)
from bridge.protocol.envelope import Event
from bridge.protocol.errors import ProtocolError
from bridge.server.app import BridgeApp
from bridge.server.client_socket import ClientSocket
from bridge.server.outbox import Outbox
from bridge.world.engine import EngineRequests
from bridge.world.entity_world import EntityWorld

log = logging.getLogger(__name__)

#: How long the plugin may take to answer one STT_FETCH_MICROPHONE before we stop pulling.
PULL_TIMEOUT_S = 10.0
#: Pause before asking again when the plugin's ring buffer had nothing new.
PULL_IDLE_S = 0.1
#: Harmony Link's own clientconnectionbuffer (8192000): what a plugin may send us in a frame.
MAX_INBOUND_BYTES = 8192000
TURN_TYPES = ("user.utterance", "tts.say")


class _Frames:
    """The Outbox's encoder: an EEP/1 event becomes the plugin events it maps to."""

    def __init__(self, translator: Translator) -> None:
        self.translator = translator

    def encode(self, item: Event | list[Send], framing: Any = None) -> list[Send]:
        return self.translator.outbound(item) if isinstance(item, Event) else item


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # the plugin never sees half a file


class HarmonyLinkConnection(ClientSocket):
    """One plugin socket: one entity."""

    writer_name = "harmony-link writer"

    def __init__(self, app: BridgeApp, ws: Any) -> None:
        super().__init__(app, ws)
        self.translator = Translator(app.config.harmony_link, app.config.characters)
        hook = app.outbound_hook

        def inspect(item: Any) -> None:
            if hook is not None and isinstance(item, Event):
                hook(item)  # the EEP/1 events of our turns still match schemas/

        self.outbox = Outbox(
            _Frames(self.translator),  # type: ignore[arg-type]
            app.config.limits.outbound_queue,
            self.abort,
            stall_timeout=app.config.limits.client_stall_ms / 1000,
            inspect=inspect,
        )
        self.engine_requests = EngineRequests(self.outbox)
        self.entity: Entity | None = None
        self._pulls: dict[str, trio.MemorySendChannel[MicrophoneData]] = {}

    async def _read(self) -> None:
        while await self._receive_one():
            pass

    def _close_entities(self) -> None:
        if self.entity is not None:
            self.entity.close()

    async def _after_close(self) -> None:
        for path in self.translator.leftover_files():
            path.unlink(missing_ok=True)

    async def _send(self, queued: list[list[Send]]) -> None:
        for item in (item for items in queued for item in items):
            if item.write is not None:
                await trio.to_thread.run_sync(_write_file, *item.write)
            await self.ws.send(item.event.to_text())
            if item.answer is not None:
                self.engine_requests.answer(item.answer)

    async def _receive_one(self) -> bool:
        try:
            data = await self.ws.recv()
        except ConnectionClosed:
            return False
        event_id, event_type = "", "ERROR"
        try:
            event = parse_event(data)
            event_id, event_type = event.event_id, event.event_type
            for step in self.translator.receive(event):
                await self._perform(step)
        except HarmonyLinkError as exc:
            return await self._reply_error(exc)
        except ProtocolError as exc:  # e.g. busy: the turn machinery refused the request
            return await self._reply_error(HarmonyLinkError(exc.message, event_id, event_type))
        except ClientGone:
            return False
        except Exception as exc:  # a bug of ours costs one event, never the plugin's socket
            log.exception("handling a Harmony Link event failed")
            return await self._reply_error(HarmonyLinkError(f"internal error: {type(exc).__name__}", event_id, event_type))
        return True

    async def _reply_error(self, exc: HarmonyLinkError) -> bool:
        try:
            await self.outbox.put([Send(error_event(exc))])  # type: ignore[arg-type]
        except ClientGone:
            return False
        return True

    async def _perform(self, step: Step) -> None:
        if isinstance(step, Send):
            await self.outbox.put([step])  # type: ignore[arg-type]
        elif isinstance(step, InitEntity):
            await self._init(step)
        elif isinstance(step, DeleteFile):
            await trio.to_thread.run_sync(functools.partial(step.path.unlink, missing_ok=True))
        elif isinstance(step, Submit):
            await self._submit(step.request)
        elif isinstance(step, Answer):
            self.engine_requests.answer(step.event)
        elif isinstance(step, Listen):
            await self._listen(step)
        elif isinstance(step, MicrophoneData):
            waiting = self._pulls.pop(step.event_id, None)
            if waiting is not None:
                waiting.send_nowait(step)  # else: a late answer after we stopped pulling

    async def _listen(self, step: Listen) -> None:
        entity = self.entity
        assert entity is not None
        entity.listener = Listener(entity, step.sample_rate, self.app.config.limits.max_audio_buffer_s)
        entity.listener.respond = step.respond
        await self.outbox.put(await entity.listener.start(step.request))
        if step.pull_bytes is not None:
            assert entity.nursery is not None
            entity.nursery.start_soon(self._pull, entity, entity.listener, step.pull_bytes, name=f"harmony-link mic pull:{entity.name}")

    async def _pull(self, entity: Entity, listener: Listener, count: int) -> None:
        """Pull mode: ask the plugin for its ring buffer, one range after the other, while listening.

        The next pull goes out only when the previous one was answered, as Harmony Link does.
        """
        position = 0
        while self.translator.listening and entity.listener is listener:
            request = self.translator.fetch_request(position, count)
            send, receive = trio.open_memory_channel[MicrophoneData](1)
            self._pulls[request.event_id] = send
            try:
                await self.outbox.put([Send(request)])  # type: ignore[arg-type]
                with trio.move_on_after(PULL_TIMEOUT_S):
                    answer = await receive.receive()
                    position += answer.raw_bytes
                    if answer.audio and self.translator.listening:
                        chunk = Event("stt.audio", self.outbox.next_id(), {"audio": answer.audio}, entity=entity.name)
                        try:
                            await listener.audio(chunk)
                        except ProtocolError as exc:
                            log.warning("microphone audio from %s refused: %s", entity.name, exc.message)
                    if not answer.raw_bytes:
                        await trio.sleep(PULL_IDLE_S)
                    continue
                log.warning("%s did not answer STT_FETCH_MICROPHONE in %.0f s: stopped pulling", entity.name, PULL_TIMEOUT_S)
                return
            except ClientGone:
                return
            finally:
                self._pulls.pop(request.event_id, None)

    async def _init(self, step: InitEntity) -> None:
        runtime = CharacterRuntime(self.app, step.character, self.translator.hello())
        runtime.world = EntityWorld(step.entity_id, self.engine_requests, step.character.options, step.character.display_name)
        entity = Entity(step.entity_id, runtime, self.outbox, turn_policy=step.character.turn_policy)
        assert self._nursery is not None
        await self._nursery.start(entity.run, name=f"entity:{step.entity_id}")
        self.entity = entity
        self.translator.entity_started(step.entity_id)
        await self.outbox.put([Send(self.translator.init_succeeded(step.event_id))])  # type: ignore[arg-type]

    async def _submit(self, request: Event) -> None:
        entity = self.entity
        assert entity is not None  # the translator refuses everything before INIT_ENTITY
        if request.type in TURN_TYPES:
            entity.submit(request, handler_for(entity.runtime, request))
        elif request.type == "playback.done":
            entity.runtime.playback(str((request.payload or {}).get("speech")), None, True)
        elif request.type == "stt.listen.stop" and entity.listener is not None:
            await self.outbox.put(await entity.listener.stop(request))
        elif request.type == "stt.audio" and entity.listener is not None:
            await entity.listener.audio(request)
        elif request.type == "stt.transcribe":
            await self._transcribe(entity, request)
        elif request.type == "movement.actions":
            world = entity.runtime.world
            assert isinstance(world, EntityWorld)
            world.register_actions(list((request.payload or {}).get("actions", [])))
        elif request.type == "movement.scene":
            world = entity.runtime.world
            assert isinstance(world, EntityWorld)
            world.update_scene(dict(request.payload or {}))
        elif request.type == "chat.history":
            runtime = entity.runtime
            memory = await runtime.memory()
            messages = await memory.recent(runtime.name, runtime.scope, int((request.payload or {}).get("limit") or 50))
            await self.outbox.put(request.reply("success", {"messages": [m.to_payload() for m in messages]}))

    async def _transcribe(self, entity: Entity, request: Event) -> None:
        """A one-shot recording: transcribed in the entity's nursery, not in the reader."""
        listener = entity.listener or Listener(entity, 16000, self.app.config.limits.max_audio_buffer_s)

        async def run() -> None:
            try:
                reply = await listener.transcribe(request)
            except ProtocolError as exc:
                reply = request.error_reply(exc.code, exc.message)
            self.outbox.put_nowait(reply)

        assert entity.nursery is not None
        entity.nursery.start_soon(run, name=f"stt.transcribe:{entity.name}")


async def serve_harmony_link(app: BridgeApp, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen for Harmony Link plugins on `[compat.harmony_link]` host:port until cancelled.

    One port for both: WebSocket plugins, and the HTTP fallback's POSTs (sniffed per
    connection by `harmony_link_http.SniffingListener`).
    """
    from bridge.server.harmony_link_http import HttpFallback, SniffingListener, loopback_or_listed

    settings = app.config.harmony_link

    async def handler(ws: Any) -> None:
        await HarmonyLinkConnection(app, ws).run()

    [inner] = await trio.open_tcp_listeners(settings.port, host=settings.host)
    async with trio.open_nursery() as nursery:
        fallback = HttpFallback(handler, nursery)
        listener = SniffingListener(inner, fallback.handle, loopback_or_listed(settings.allowed_clients))
        nursery.start_soon(listener.run, nursery)
        try:
            # Returns when the server is closed (RunningBridge.aclose).
            await serve(handler, listeners=[listener], compression=None, max_size=MAX_INBOUND_BYTES, max_queue=64, task_status=task_status)
        finally:
            await fallback.aclose()
            nursery.cancel_scope.cancel()
