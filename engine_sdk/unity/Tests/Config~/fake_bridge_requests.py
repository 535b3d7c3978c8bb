"""A stand-in bridge for what the real one does not do yet: send `movement.scene.request` and
`movement.actions.request` (it sends `movement.perform` since the Movement V1 work; that is
tested against the real bridge too). It speaks EEP/1 MessagePack on 127.0.0.1:
answers hello and entity.init, and on each user.utterance sends the three bridge requests,
waits for the game's answers, and ends the turn with a success whose payload echoes them, so
the C# test can check what the bridge would have received. Started by BridgeRequestTests.

    python fake_bridge_requests.py PORT_FILE
"""

from __future__ import annotations

import sys
from typing import Any

import msgpack
from websockets.sync.server import serve


def handle(ws: Any) -> None:
    def send(event: dict[str, Any]) -> None:
        ws.send(msgpack.packb(event, use_bin_type=True))

    def recv() -> dict[str, Any]:
        return msgpack.unpackb(ws.recv(timeout=20), raw=False)

    n = 0
    while True:
        try:
            event = recv()
        except Exception:
            return
        kind, eid, entity = event.get("type"), event.get("id"), event.get("entity")
        if kind == "session.hello":
            send({"type": kind, "id": eid, "status": "success", "payload": {"session": "fake", "protocol": 1, "characters": ["gatekeeper"]}})
        elif kind == "entity.init":
            send({"type": kind, "id": eid, "entity": entity, "status": "success", "payload": {"character": "gatekeeper"}})
        elif kind == "user.utterance":
            send({"type": kind, "id": eid, "entity": entity, "status": "pending", "payload": None})
            answers = []
            for rtype, payload in (
                ("movement.perform", {"actions": [{"name": "open_gate", "args": {"gate": "north"}}]}),
                ("movement.scene.request", None),
                ("movement.actions.request", None),
            ):
                n += 1
                rid = f"b{n}"
                send({"type": rtype, "id": rid, "entity": entity, "ref": eid, "payload": payload})
                reply = recv()
                answers.append({"type": reply.get("type"), "id": reply.get("id"), "expected_id": rid,
                                "entity": reply.get("entity"), "status": reply.get("status"), "payload": reply.get("payload")})
            send({"type": kind, "id": eid, "entity": entity, "status": "success", "payload": {"reply": "done", "answers": answers}})
        else:
            send({"type": kind, "id": eid, "entity": entity, "status": "success", "payload": {}})


def main() -> None:
    with serve(handle, "127.0.0.1", 0, compression=None) as server:
        port = server.socket.getsockname()[1]
        with open(sys.argv[1], "w") as f:
            f.write(f"ws://127.0.0.1:{port}/\n")
        print(f"READY ws://127.0.0.1:{port}/", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
