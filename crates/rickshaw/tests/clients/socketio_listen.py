"""A socket.io client from another ecosystem (python-socketio) listening on Rickshaw's
/communication namespace (or --namespace). Prints every event as one JSON line
{"event": ..., "data": ...} and exits 0 after --count events named --event (`match`), 1 on timeout.

usage: socketio_listen.py URL [--name NAME] [--transport polling|websocket] [--count N]
                              [--timeout S] [--namespace NS] [--event NAME]
"""
import argparse
import json
import sys
import threading

import socketio

def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--name")
    parser.add_argument("--transport", choices=["polling", "websocket"], default="polling")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--namespace", default="/communication")
    parser.add_argument("--event", default="match")
    args = parser.parse_args()
    namespace = args.namespace

    client = socketio.Client(reconnection=False)
    matches = []
    done = threading.Event()
    printing = threading.Lock()

    def emit(event, data):
        # Handlers run on several threads; one line per event, never interleaved.
        with printing:
            sys.stdout.write(json.dumps({"event": event, "data": data}) + "\n")
            sys.stdout.flush()

    @client.on("connect", namespace=namespace)
    def on_connect():
        emit("connected", {"transport": client.transport()})

    @client.on("*", namespace=namespace)
    def on_any(event, data):
        emit(event, data)
        if event == args.event:
            matches.append(data)
            if len(matches) >= args.count:
                done.set()

    # "polling" starts on long-polling and upgrades to WebSocket, as browsers do.
    transports = ["polling", "websocket"] if args.transport == "polling" else ["websocket"]
    client.connect(
        args.url,
        namespaces=[namespace],
        transports=transports,
        auth={"name": args.name} if args.name else None,
        wait_timeout=10,
    )
    ok = done.wait(args.timeout)
    client.disconnect()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
