"""The ``normalize``, ``import-focus`` and ``collect-gpu`` commands (wired in :mod:`streams.cli.main`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from schemas.errors import SchemaError
from streams.cli.cli_inputs import print_line_errors, stripped_lines


def _settings() -> Any:
    from streams.config import Settings

    return Settings.from_env()


def run_normalize(args: argparse.Namespace) -> int:
    from streams.core.pricing import PriceCatalogue
    from streams.sources.normalize import NormalizeResult, normalize_lines

    lines = stripped_lines(args.file, f"{args.format} payload")
    settings = _settings()
    catalogue = PriceCatalogue.load(settings.prices_file)
    result = NormalizeResult()
    out = sys.stdout.buffer
    for event in normalize_lines(args.format, lines, catalogue, result):
        out.write(orjson.dumps(event) + b"\n")
    out.flush()
    if result.events == 0 and not result.errors:
        raise SchemaError(f"{args.file}: no payloads (the input is empty); normalize needs one {args.format} "
                          "body or envelope per line")
    print_line_errors("normalize", args.file, result.errors)
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
    from streams.sources.focus_import import import_focus, load_fx_rates, read_focus_rows

    fx_rates = load_fx_rates(args.fx_rates) if args.fx_rates else None
    result = import_focus(read_focus_rows(args.file), fx_rates=fx_rates, tag_map=_settings().focus_tag_map)
    if result.rows == 0:
        raise SchemaError(f"{args.file}: no rows after the header; import-focus needs FOCUS cost rows")
    print_line_errors("import-focus", args.file, result.errors)
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
    from schemas.errors import ConfigError
    from streams.sources.gpu_collect import Attribution, collect_once, parse_price_per_hour, run_collector

    if not args.interval > 0:
        raise ConfigError(f"--interval {args.interval}: must be a positive number of seconds")
    default_price, by_model = parse_price_per_hour(args.price_per_hour) if args.price_per_hour else (None, {})
    attribution = Attribution(cluster=args.cluster, team=args.team, service=args.service, model=args.model,
                              price_per_hour=default_price, purchase_option=args.purchase_option,
                              prices_by_model=tuple(by_model.items()))
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
