"""The ``spendsentry`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

import orjson

from schemas.errors import SchemaError, SpendSentryError
from streams.worker.gc_tuning import tune_gc

log = logging.getLogger("spendsentry")
#: ``worker -l`` choices
LOG_LEVELS = {"crit": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
              "debug": logging.DEBUG}


def _non_negative(raw: str) -> float:
    """An argparse type: a finite number of seconds, 0 or more (one clear error otherwise)."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{raw!r}: must be a finite number >= 0")
    return value


def _settings():
    from streams.config import Settings

    return Settings.from_env()


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.dev import localkafka
    from streams.app import create_app
    from streams.core.pricing import PriceCatalogue

    settings = _settings()
    pricer = PriceCatalogue.load(settings.prices_file)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app, _ = create_app(settings, pricer)
    # every topic the worker reads, its tables' changelogs too, created and led before Faust
    # starts: a changelog Faust creates itself can be missing from its first metadata, and then
    # its recovery never completes
    changelogs = {table.changelog_topic.get_topic_name(): table.partitions or settings.partitions
                  for table in app.tables.values()}
    localkafka.ensure_topics(settings.bootstrap, {
        settings.usage_topic: settings.partitions,
        settings.alerts_topic: settings.partitions,
        settings.deadletter_topic: settings.partitions,
        settings.undeliverable_topic: settings.partitions,
        settings.budget_spend_topic: settings.partitions,
        settings.gpu_topic: settings.partitions,
        settings.control_topic: settings.partitions,
        **changelogs,
    }, compacted=set(changelogs), replication=settings.replication_factor,
        client_options=settings.kafka_security.client_options())
    app.task(keep_log_level(LOG_LEVELS[args.loglevel]))
    tune_gc()
    sys.argv = [sys.argv[0], "worker", "-l", args.loglevel]
    app.main()
    return 0


def keep_log_level(level: int) -> Callable[[], Awaitable[None]]:
    """A start-up task that sets the root logger back to ``level``.

    Faust's worker sets the root logger to DEBUG for its start-up spinner when the level is warn
    or above, so every debug call of aiokafka and Faust (several per changelog write) builds a
    log record that is then dropped (measured in the worker's profile).
    """

    async def restore_log_level() -> None:
        logging.root.setLevel(level)

    return restore_log_level


def cmd_produce(args: argparse.Namespace) -> int:
    from streams.producer import UsageProducer, message_key, read_lines

    settings = _settings()
    dims = settings.group_bys[0]

    async def run() -> int:
        async with UsageProducer(settings.bootstrap, settings.usage_topic, dims,
                                 client_options=settings.kafka_security.client_options()) as producer:
            futures = []
            for line in read_lines(args.file):
                try:
                    decoded = orjson.loads(line)
                    key = message_key(decoded, dims) if isinstance(decoded, dict) else None
                except orjson.JSONDecodeError:
                    key = None  # sent as is: the worker dead-letters it with the reason
                futures.append(await producer.send_raw(line, key))
            await asyncio.gather(*futures)
            return len(futures)

    sent = asyncio.run(run())
    print(f"sent {sent} events to {settings.usage_topic}")
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    from streams.dev import localkafka

    if args.action == "up":
        started = time.monotonic()
        bootstrap = localkafka.up()
        print(f"kafka ready at {bootstrap} in {time.monotonic() - started:.1f}s")
    elif args.action == "down":
        print("kafka stopped" if localkafka.down() else "kafka was not running")
    else:
        print(orjson.dumps(localkafka.status(), option=orjson.OPT_INDENT_2).decode())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.dev.demo import run_demo

    return asyncio.run(run_demo(history_hours=args.history_hours, burst_after_s=args.burst_after,
                                duration_s=args.duration, exit_after=args.exit_after))


def cmd_backtest(args: argparse.Namespace) -> int:
    from streams.cli.backtest import backtest
    from streams.cli.cli_inputs import check_output, print_line_errors, stripped_lines
    from streams.core.pricing import PriceCatalogue

    check_output(args.output)
    if args.series:
        from streams.cli.score_series import score_series_file

        started = time.perf_counter()
        rows = score_series_file(args.series, args.output)
        took = time.perf_counter() - started
        print(f"rows:       {rows:,}")
        print(f"throughput: {rows / max(took, 1e-9):,.0f} rows/s ({took:.2f}s)")
        print(f"scores written to {args.output}")
        return 0
    if not args.events:
        print("spendsentry backtest: give an EVENTS file or --series FILE.csv", file=sys.stderr)
        return 2
    from streams.core.budgets import load_budgets_file

    settings = _settings()
    budgets = load_budgets_file(settings.budgets_file) if settings.budgets_file else []
    pricer = PriceCatalogue.load(settings.prices_file)
    lines = stripped_lines(args.events, "events")
    tune_gc()
    with open(args.output, "wb") as output:
        summary = backtest(lines, output, settings.backtest_engine_config(), pricer, budgets=budgets,
                           max_future_s=args.max_future_seconds)
    if summary.events == 0 and summary.invalid == 0:
        raise SchemaError(f"{args.events}: no events (the file is empty); backtest needs JSON Lines usage events")
    for line in summary.lines():
        print(line)
    print_line_errors("backtest", args.events, summary.errors, summary.invalid)
    print(f"alerts written to {args.output}")
    return 1 if summary.invalid else 0


def cmd_normalize(args: argparse.Namespace) -> int:
    from streams.cli.source_commands import run_normalize

    return run_normalize(args)


def cmd_import_focus(args: argparse.Namespace) -> int:
    from streams.cli.source_commands import run_import_focus

    return run_import_focus(args)


def cmd_reconcile(args: argparse.Namespace) -> int:
    from streams.cli.reconcile import run_reconcile

    return run_reconcile(args)


def cmd_report(args: argparse.Namespace) -> int:
    from streams.cli.report_command import run_report

    return run_report(args)


def cmd_collect_gpu(args: argparse.Namespace) -> int:
    from streams.cli.source_commands import run_collect_gpu

    return run_collect_gpu(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from streams.dev.bench import run

    return run(args)


def cmd_redeliver(args: argparse.Namespace) -> int:
    from streams.cli.redeliver import run_redeliver

    outcomes = asyncio.run(run_redeliver(_settings(), args.alert_id))
    for record, result in outcomes:
        state = "delivered" if result.ok else f"failed: {result.error}"
        print(f"{record.alert.get('alert_id')} {record.alert.get('status')} -> {record.destination_key}: {state}")
    failed = sum(1 for _, result in outcomes if not result.ok)
    print(f"redelivered {len(outcomes) - failed} of {len(outcomes)} undeliverable record(s)")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spendsentry", description="Real-time AI spend anomaly alerting.")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run the stream worker (Faust)")
    worker.add_argument("-l", "--loglevel", default="info", choices=list(LOG_LEVELS))
    worker.set_defaults(func=cmd_worker)

    produce = sub.add_parser("produce", help="send a JSON Lines file of usage events to the usage topic")
    produce.add_argument("file", help="JSON Lines file, one event per line ('-' = stdin)")
    produce.set_defaults(func=cmd_produce)

    redeliver = sub.add_parser("redeliver", help="send the undeliverable alert records again")
    redeliver.add_argument("--alert-id", default=None, help="only this alert's records")
    redeliver.set_defaults(func=cmd_redeliver)

    kafka = sub.add_parser("kafka", help="a local single-node Kafka (KRaft) on 127.0.0.1:9092")
    kafka.add_argument("action", choices=["up", "down", "status"])
    kafka.set_defaults(func=cmd_kafka)

    backtest = sub.add_parser("backtest", help="replay a usage-event file through the engine, without Kafka")
    backtest.add_argument("events", nargs="?", help="JSON Lines file of usage events ('-' = stdin)")
    backtest.add_argument("--series", metavar="FILE.csv", default=None,
                          help="instead of events: a plain 'timestamp,value' CSV series; writes "
                               "'timestamp,value,anomaly_score' (score in [0, 1]) to --output")
    backtest.add_argument("--output", required=True, help="where to write alerts (JSON Lines), or scores with --series")
    backtest.add_argument("--max-future-seconds", type=_non_negative, default=None, metavar="S",
                          help="reject events stamped more than S seconds ahead of the running watermark of the "
                               "input (default: no bound; a file may have gaps longer than any bound)")
    backtest.set_defaults(func=cmd_backtest)

    bench = sub.add_parser("bench", help="throughput ceilings, worker throughput, alert latency, backtest and RSS "
                                         "on the local broker; last line machine-readable")
    from streams.dev.bench import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)

    demo = sub.add_parser("demo", help="broker + worker + webhook receiver + traffic with a cost burst")
    demo.add_argument("--history-hours", type=float, default=3.0, help="hours of history replayed first")
    demo.add_argument("--burst-after", type=float, default=45.0, help="seconds of live traffic before the burst (it starts on the next minute boundary after them)")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    demo.add_argument("--exit-after", choices=["firing", "resolved"], default=None,
                      help="stop once the burst's alert arrived firing (or resolved)")
    demo.set_defaults(func=cmd_demo)

    normalize = sub.add_parser("normalize", help="provider usage payloads (JSON Lines) -> canonical priced events on stdout")
    normalize.add_argument("file", help="JSON Lines: one provider body or envelope per line ('-' = stdin)")
    normalize.add_argument("--format", required=True,
                           choices=["canonical", "openai", "openai-responses", "anthropic", "gemini", "bedrock",
                                    "azure-openai", "litellm", "otel"])
    normalize.set_defaults(func=cmd_normalize)

    focus = sub.add_parser("import-focus", help="a FOCUS 1.0-1.3 cost export (CSV) -> cost events on the usage topic")
    focus.add_argument("file", help="FOCUS CSV export (Parquet needs pyarrow)")
    focus.add_argument("--stdout", action="store_true", help="print the events as JSON Lines instead of sending them")
    focus.add_argument("--fx-rates", metavar="FILE", default=None,
                       help='bill currencies other than USD: a JSON object of USD per unit, e.g. {"EUR": 1.08}')
    focus.set_defaults(func=cmd_import_focus)

    reconcile = sub.add_parser("reconcile", help="real-time estimate (usage events) vs a FOCUS bill, per scope and "
                                                 "UTC day; exit 1 on drift beyond the tolerance")
    from streams.cli.reconcile import add_arguments as add_reconcile_arguments

    add_reconcile_arguments(reconcile)
    reconcile.set_defaults(func=cmd_reconcile)

    report = sub.add_parser("report", help="spend by group, unit costs, untagged share, allocation, GPU idle waste, "
                                           "purchase options and top movers, from event files (no worker)")
    from streams.cli.report_command import add_arguments as add_report_arguments

    add_report_arguments(report)
    report.set_defaults(func=cmd_report)

    gpu = sub.add_parser("collect-gpu", help="GPU usage from NVML or a dcgm-exporter, to <prefix>.gpu")
    gpu.add_argument("--dcgm-url", default=None, help="scrape this dcgm-exporter /metrics URL instead of local NVML")
    gpu.add_argument("--interval", type=float, default=60.0, help="seconds between scrapes (the events' interval_s)")
    gpu.add_argument("--once", action="store_true", help="one scrape, then exit")
    gpu.add_argument("--stdout", action="store_true", help="with --once: print JSON Lines instead of sending")
    gpu.add_argument("--cluster", default="default")
    gpu.add_argument("--team", default=None)
    gpu.add_argument("--service", default=None)
    gpu.add_argument("--model", default=None, help="the AI model served on these GPUs (attribution)")
    gpu.add_argument("--price-per-hour", default=None,
                     help="USD per whole GPU-hour: one price (2.5) or one per GPU model (H100=7,A100=3)")
    gpu.add_argument("--purchase-option", choices=["on_demand", "reserved", "spot"], default="on_demand")
    gpu.set_defaults(func=cmd_collect_gpu)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except SpendSentryError as exc:
        print(f"spendsentry: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
