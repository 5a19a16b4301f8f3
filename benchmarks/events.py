"""Events: the cost of recording one, and draining 10,000 webhook deliveries.

Run: .venv/bin/python benchmarks/events.py
1. Recording: an alias-move-sized transaction (one audit row) with and without the event
   row in the same transaction, SQLite; the difference is what an event adds (target < 1 ms).
2. Delivery: 10,000 queued events drained to a local receiver running in another process
   (uvicorn) (target < 10 s), against the baseline of the same 10,000 POSTs sent by a bare
   thread pool of keep-alive `http.client` connections (the deliverer's transport) with
   the same concurrency and no store.
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from _common import fresh_settings

from conveyor.events import Deliverer, load_targets
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata import tables as t
from conveyor.stores.metadata.events import record_event

RECEIVER = """
import socket, sys
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b""})

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(2048)
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(app, log_level="warning", access_log=False, http="httptools")
uvicorn.Server(config).run(sockets=[sock])
"""

N_EVENTS = 10_000
CONCURRENCY = 16


def _recording(engine: sa.Engine, repeat: int = 400) -> tuple[float, float]:
    with engine.begin() as c:
        c.execute(
            t.runs.insert(),
            [
                {
                    "id": "R" * 26,
                    "pipeline": "bench",
                    "status": "completed",
                    "created_at": 0.0,
                    "params": {},
                }
            ],
        )

    def one(with_event: bool) -> float:
        start = time.perf_counter()
        with engine.begin() as c:
            c.execute(
                t.run_tags.insert(),
                [{"run_id": "R" * 26, "key": f"k{time.perf_counter_ns()}", "value": "v"}],
            )
            if with_event:
                record_event(c, "alias_moved", "bench@production", "moved", links={"x": 1})
        return time.perf_counter() - start

    base, withe = [], []
    for _ in range(repeat):
        base.append(one(False))
        withe.append(one(True))
    return statistics.median(base) * 1000, statistics.median(withe) * 1000


def main() -> None:
    settings = fresh_settings()
    engine = open_metadata_store(settings.db_url).engine
    base_ms, with_ms = _recording(engine)
    print(
        f"record: transaction {base_ms:.3f} ms, with event {with_ms:.3f} ms, "
        f"event adds {with_ms - base_ms:.3f} ms (x{with_ms / base_ms:.2f})"
    )

    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{int(receiver.stdout.readline())}/hook"

        local = threading.local()
        body = b'{"kind": "run_finished"}'

        def post(_: int) -> int:
            connection = getattr(local, "connection", None)
            if connection is None:
                connection = local.connection = http.client.HTTPConnection(
                    "127.0.0.1", int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]), timeout=10
                )
            connection.request("POST", "/hook", body=body)
            answer = connection.getresponse()
            answer.read()
            return answer.status

        start = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            codes = list(pool.map(post, range(N_EVENTS)))
        bare = time.perf_counter() - start
        assert set(codes) == {200}

        targets = load_targets({"notify": [{"url": url, "name": "bench"}]})
        with Deliverer(engine, targets, concurrency=CONCURRENCY) as deliverer:
            deliverer.register_targets()
            with engine.begin() as c:
                for i in range(N_EVENTS):
                    record_event(c, "run_finished", f"p{i % 10}", f"run {i}")
            start = time.perf_counter()
            result = deliverer.drain(timeout=600)
            drained = time.perf_counter() - start
        assert result.delivered == N_EVENTS, result
        print(
            f"deliver {N_EVENTS:,}: {drained:.2f} s ({N_EVENTS / drained:,.0f}/s); "
            f"bare http.client pool {bare:.2f} s; ratio x{drained / bare:.2f}"
        )
    finally:
        receiver.kill()
        receiver.wait()


if __name__ == "__main__":
    main()
