#!/usr/bin/env python3
"""A login flood against a running Rickshaw, as issue 11 describes the crash: many concurrent
POST /v1/auth/login with a fresh random email each, from one client address (127.0.0.2; with
--addresses N, spread over N addresses 127.0.x.y), while one legitimate account logs in from
127.0.0.1 every 200 ms and the server's resident memory is read.

    python3 scripts/attack_logins.py --url http://127.0.0.1:8080 --pid <rickshaw pid> \
        --concurrency 500 --duration 30

Prints the attackers' answers by status, the legitimate logins' p50/p99/max and statuses, and the
server's resident memory before and at its peak; exits 1 if a target is missed (the process
died, legitimate login p99 > 2 s, or memory grew by more than 200 MiB). Standard library only.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from urllib.parse import urlparse


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


async def post(host, port, path, body, source=None, timeout=30.0):
    """One HTTP/1.1 POST on a fresh connection: (status, seconds)."""
    started = time.monotonic()
    payload = json.dumps(body).encode()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0) if source else None),
            timeout,
        )
    except Exception:
        return "connect-failed", time.monotonic() - started
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        await asyncio.wait_for(reader.read(), timeout)
        parts = line.split()
        status = parts[1].decode() if len(parts) > 1 else "no-answer"
    except Exception:
        status = "closed"
    finally:
        writer.close()
    return status, time.monotonic() - started


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--pid", type=int, required=True, help="the server's process id")
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--addresses", type=int, default=1,
                        help="client addresses the attack comes from (1: 127.0.0.2)")
    args = parser.parse_args()
    url = urlparse(args.url)
    host, port = url.hostname, url.port or 80

    email = f"legit-{uuid.uuid4().hex}@example.com"
    password = "correct horse battery"
    status, _ = await post(host, port, "/v1/auth/signup",
                           {"email": email, "password": password, "name": "Legit", "role": "rider"})
    if status not in ("201", "202"):
        sys.exit(f"cannot sign up the legitimate account: {status}")

    before = rss_mib(args.pid)
    peak = before
    attack = Counter()
    legit, legit_status = [], Counter()
    deadline = time.monotonic() + args.duration

    async def attacker(n):
        k = n % args.addresses
        source = "127.0.0.2" if args.addresses == 1 else f"127.0.{1 + k // 250}.{1 + k % 250}"
        while time.monotonic() < deadline:
            status, _ = await post(host, port, "/v1/auth/login",
                                   {"email": f"x{random.getrandbits(64):x}@example.com",
                                    "password": "wrong password"}, source)
            attack[status] += 1

    async def legitimate():
        while time.monotonic() < deadline:
            status, seconds = await post(host, port, "/v1/auth/login",
                                         {"email": email, "password": password}, "127.0.0.1")
            legit.append(seconds)
            legit_status[status] += 1
            await asyncio.sleep(0.2)

    async def memory():
        nonlocal peak
        last = time.monotonic()
        while time.monotonic() < deadline:
            now = rss_mib(args.pid)
            if now is None:
                return
            peak = max(peak, now)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                print(f"[{args.duration - (deadline - time.monotonic()):5.1f}s] rss {now:.0f} MiB, "
                      f"attack {dict(attack)}, legit {dict(legit_status)}", file=sys.stderr)
            await asyncio.sleep(0.1)

    await asyncio.gather(memory(), legitimate(), *(attacker(n) for n in range(args.concurrency)))
    alive = os.path.exists(f"/proc/{args.pid}")
    p50, p99 = percentile(legit, 0.5), percentile(legit, 0.99)
    print(f"attackers: {dict(attack)}")
    print(f"legitimate logins: {len(legit)}, {dict(legit_status)}, p50 {p50:.3f} s, p99 {p99:.3f} s, "
          f"max {max(legit):.3f} s")
    print(f"server: {'alive' if alive else 'DEAD'}, rss before {before:.0f} MiB, peak {peak:.0f} MiB "
          f"(+{peak - before:.0f})")
    missed = []
    if not alive:
        missed.append("the process died")
    if p99 > 2.0:
        missed.append(f"legitimate login p99 {p99:.2f} s > 2 s")
    if legit_status.get("200", 0) < len(legit) * 0.99:
        missed.append("legitimate logins failed")
    if peak - before > 200:
        missed.append(f"memory grew {peak - before:.0f} MiB > 200 MiB")
    if missed:
        sys.exit("targets missed: " + "; ".join(missed))
    print("targets met")


if __name__ == "__main__":
    asyncio.run(main())
