"""The ``normalize``, ``import-focus`` and ``collect-gpu`` commands (wired in :mod:`streams.cli.main`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, Iterator

import orjson


def _settings() -> Any:
    from streams.config import Settings

    return Settings.from_env()


def _lines(path: str) -> Iterator[bytes]:
    """Every line (blank ones too, so error line numbers match the file); ``-`` = stdin."""
    handle = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        yield from handle
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def run_normalize(args: argparse.Namespace) -> int:
    from streams.core.pricing import PriceCatalogue
    from streams.sources.normalize import NormalizeResult, normalize_lines

    settings = _settings()
    catalogue = PriceCatalogue.load(settings.prices_file)
    result = NormalizeResult()
    out = sys.stdout.buffer
    for event in normalize_lines(args.format, _lines(args.file), catalogue, result):
        out.write(orjson.dumps(event) + b"\n")
    out.flush()
    for error in result.errors:
        print(f"spendsentry normalize: {args.file}: {error}", file=sys.stderr)
    for model, count in sorted(result.unpriced.items()):
        print(f"spendsentry normalize: warning: {count} event(s) of unpriced model {model} (no cost_usd)",
              file=sys.stderr)
    print(f"{result.events} events, {len(result.errors)} bad lines", file=sys.stderr)
    return 1 if result.errors else 0


async def _send_events(settings: Any, events: list[dict[str, Any]]) -> int:
    from streams.producer import UsageProducer

    security = getattr(settings, "kafka_security", None)
    options = security.client_options() if security is not None else None
    # bill rows skip the minute buckets (the engine judges them per service/account at the bill's
    # grain: detectors/bill_grain.py), so they are keyed by service and account, not the partition key
    async with UsageProducer(settings.bootstrap, settings.usage_topic, ("service", "tags.account"),
                             client_options=options) as producer:
        await producer.send_events(events, batch=500)
    return len(events)


def run_import_focus(args: argparse.Namespace) -> int:
    from streams.sources.focus_import import import_focus, read_focus_rows

    result = import_focus(read_focus_rows(args.file))
    for error in result.errors:
        print(f"spendsentry import-focus: {args.file}: {error}", file=sys.stderr)
    if args.stdout:
        out = sys.stdout.buffer
        for event in result.events:
            out.write(orjson.dumps(event) + b"\n")
        out.flush()
        sent = ""
    else:
        settings = _settings()
        count = asyncio.run(_send_events(settings, result.events))
        sent = f", sent to {settings.usage_topic}: {count}"
    total = sum(e["cost_usd"] for e in result.events)
    print(f"{result.rows} rows: {len(result.events)} cost events (${total:,.2f}), {result.credits} credit rows "
          f"(${result.credits_usd:,.2f}) skipped, {len(result.errors)} bad rows{sent}", file=sys.stderr)
    return 1 if result.errors else 0


def run_collect_gpu(args: argparse.Namespace) -> int:
    from streams.sources.gpu_collect import Attribution, collect_once, run_collector

    attribution = Attribution(cluster=args.cluster, team=args.team, service=args.service, model=args.model,
                              price_per_hour=args.price_per_hour, purchase_option=args.purchase_option)
    if args.stdout:
        if not args.once:
            print("spendsentry collect-gpu: --stdout needs --once", file=sys.stderr)
            return 2
        out = sys.stdout.buffer
        for event in collect_once(dcgm_url=args.dcgm_url, interval_s=args.interval, attribution=attribution):
            out.write(orjson.dumps(event.to_dict()) + b"\n")
        out.flush()
        return 0
    settings = _settings()
    sent = asyncio.run(run_collector(settings, dcgm_url=args.dcgm_url, interval_s=args.interval,
                                     attribution=attribution, iterations=1 if args.once else None))
    print(f"sent {sent} GPU events to {settings.topic_prefix}.gpu", file=sys.stderr)
    return 0
