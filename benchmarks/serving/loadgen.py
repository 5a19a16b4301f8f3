"""A small closed-loop HTTP/1.1 load generator on raw asyncio sockets (keep-alive).

Each of `concurrency` connections sends the same POST, waits for the full response and
sends again. Prints JSON: requests/s, p50/p99 latency (ms), errors, and the number of
requests answered including the warm-up (what a server-side CPU reading covers).
`--echo-server` starts a trivial server (run it as a separate process) to measure this
generator's own limit, so a server result near it is known to be client-bound.

    python benchmarks/serving/loadgen.py --url http://127.0.0.1:8080/predict \
        --body '{"records": [...]}' --concurrency 64 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


async def _connection(
    host: str, port: int, request: bytes, until: float, warm_until: float, lat: list[float]
) -> tuple[int, int, int]:
    reader, writer = await asyncio.open_connection(host, port)
    errors = done = total = 0
    try:
        while True:
            start = time.perf_counter()
            if start >= until:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            end = time.perf_counter()
            total += 1
            if start >= warm_until:
                if status != 200:
                    errors += 1
                lat.append(end - start)
                done += 1
    finally:
        writer.close()
    return done, errors, total


async def run(
    url: str, body: bytes, concurrency: int, duration: float, warmup: float
) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    now = time.perf_counter()
    warm_until = now + warmup
    until = warm_until + duration
    lat: list[float] = []
    results = await asyncio.gather(
        *[_connection(host, port, request, until, warm_until, lat) for _ in range(concurrency)]
    )
    done = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    total = sum(r[2] for r in results)
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
    return {
        "requests": done,
        "all_requests": total,  # warm-up included: what the server's CPU time covers
        "errors": errors,
        "rps": done / duration,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }


class _Echo(asyncio.Protocol):
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(rest) < length:
                return
            self.buf = rest[length:]
            self.t.write(self.reply)  # type: ignore[attr-defined]


async def echo_server(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Echo, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8080/predict")
    parser.add_argument("--body", default="{}")
    parser.add_argument("--body-file")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--echo-server", type=int, help="run the trivial server on this port")
    args = parser.parse_args()
    if args.echo_server:
        asyncio.run(echo_server(args.echo_server))
        return
    body = Path(args.body_file).read_bytes() if args.body_file else args.body.encode()
    result = asyncio.run(run(args.url, body, args.concurrency, args.duration, args.warmup))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
