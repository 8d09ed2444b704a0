"""``cvm-emulator``: run the local Tencent Cloud CVM API server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from .catalogue import load_catalogue, load_config
from .clock import Clock
from .server import EmulatorServer
from .store import Store

log = logging.getLogger("cvm_emulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cvm-emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port to bind; 0 picks a free one (default 9000)")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file once listening")
    parser.add_argument("--db", type=Path, default=Path("cvm-emulator.db"), help="SQLite database path")
    parser.add_argument("--config", type=Path, help="YAML: accounts, regions, clock, quotas, faults")
    parser.add_argument("--clock", help="fast, realistic, or a factor applied to realistic durations")
    parser.add_argument("--fail-rate", type=float, help="fraction of API calls answered InternalError")
    parser.add_argument("--latency-ms", type=float, help="delay added to every API answer")
    parser.add_argument(
        "--enforce-rate-limits",
        action="store_true",
        default=None,
        help="answer RequestLimitExceeded above the documented per-action limits",
    )
    parser.add_argument(
        "--allow-any-import-url",
        action="store_true",
        default=None,
        help="let ImportImage read any http(s) or file URL, not only objects of the emulator's COS-style store",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


async def serve(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    if args.clock is not None:
        config.clock = args.clock
    if args.fail_rate is not None:
        config.fail_rate = args.fail_rate
    if args.latency_ms is not None:
        config.latency_ms = args.latency_ms
    if args.enforce_rate_limits:
        config.enforce_rate_limits = True
    if args.allow_any_import_url:
        config.allow_any_import_url = True
    clock = Clock.parse(config.clock)
    catalogue = load_catalogue(config.regions)
    store = Store(args.db)
    server = EmulatorServer(store, catalogue, config, clock)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = args.port
    for address in runner.addresses:
        if isinstance(address, tuple):
            port = int(address[1])
            break
    server.emu.objects.listen(args.host, port)
    if args.port_file is not None:
        tmp = args.port_file.with_name(args.port_file.name + ".tmp")
        tmp.write_text(str(port), encoding="utf-8")
        os.replace(tmp, args.port_file)
    print(
        f"cvm-emulator listening on http://{args.host}:{port} (db {args.db}, clock {clock.name}, "
        f"{len(config.accounts)} accounts)",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(args))
    except (ValueError, OSError) as exc:
        print(f"cvm-emulator: {exc}", file=sys.stderr)
        return 2
    return 0
