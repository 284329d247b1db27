"""``spendsentry report EVENTS.jsonl [--gpu GPU_EVENTS.jsonl]``: the FinOps figures the worker serves,
from files alone (:func:`streams.core.report.spend_report`, the code behind the worker's API).

Usage events without ``cost_usd`` are priced with the catalogue (``SPENDSENTRY_PRICES_FILE`` merged)
as the worker does; unpriced ones count $0 and are listed. Allocation rules come from
``SPENDSENTRY_ALLOCATION_FILE``, GPU purchase prices from ``SPENDSENTRY_GPU_PRICES_FILE``, the
untagged share from ``SPENDSENTRY_REQUIRED_TAGS``. Exit 0, 1 when lines were invalid, 2 on a bad input.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import Any, Iterable

import orjson

from schemas.errors import ConfigError, SchemaError
from schemas.gpu import GpuUsageEvent, validate_gpu
from schemas.usage import UsageEvent, parse_timestamp, validate_usage
from streams.cli.cli_inputs import print_line_errors, stripped_lines

FORMATS = ("table", "json", "csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("events", help="usage events (JSON Lines, '-' = stdin): normalize or import-focus output")
    parser.add_argument("--gpu", metavar="GPU_EVENTS.jsonl", default=None, help="GPU usage events (collect-gpu output)")
    parser.add_argument("--group-by", default="team", help="dimensions, comma-separated (default team)")
    parser.add_argument("--from", dest="start", default=None, help="period start, RFC 3339 (default: first event)")
    parser.add_argument("--to", dest="end", default=None, help="period end, exclusive (default: after the last event)")
    parser.add_argument("--format", choices=FORMATS, default="table")


def _read(path: str, what: str, parse: Any, errors: list[str]) -> list[Any]:
    out = []
    for number, raw in enumerate(stripped_lines(path, what), 1):
        if not raw:
            continue
        try:
            data = orjson.loads(raw)
            for item in data if isinstance(data, list) else [data]:
                out.append(parse(item))
        except orjson.JSONDecodeError as exc:
            errors.append(f"line {number}: not JSON: {exc}")
        except SchemaError as exc:
            errors.append(f"line {number}: {exc}")
    return out


def _time(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_timestamp(text, flag)
    except SchemaError as exc:
        raise ConfigError(f"{flag} {text!r}: {exc}") from None


def run_report(args: argparse.Namespace) -> int:
    from streams.config import Settings
    from streams.core.attribution import load_allocation_rules, parse_group_by
    from streams.core.gpu_ledger import load_gpu_prices
    from streams.core.pricing import PriceCatalogue
    from streams.core.report import spend_report

    settings = Settings.from_env()
    dims = settings.engine_config().attribution.dims  # type: ignore[union-attr]
    try:
        group_by = parse_group_by(args.group_by, dims)
    except ValueError as exc:
        raise ConfigError(f"--group-by {args.group_by!r}: {exc}") from None
    start, end = _time(args.start, "--from"), _time(args.end, "--to")
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"--to {args.end}: must be after --from {args.start}")
    errors: list[str] = []
    events: list[UsageEvent] = _read(args.events, "usage events", validate_usage, errors)
    gpu_errors: list[str] = []
    gpu_events: list[GpuUsageEvent] = _read(args.gpu, "GPU events", validate_gpu, gpu_errors) if args.gpu else []
    if not events and not gpu_events and not errors and not gpu_errors:
        raise SchemaError(f"{args.events}: no events (the file is empty); report needs JSON Lines usage events")
    print_line_errors("report", args.events, errors)
    if args.gpu:
        print_line_errors("report", args.gpu, gpu_errors)
    catalogue = PriceCatalogue.load(settings.prices_file)
    priced: list[tuple[UsageEvent, float]] = []
    unpriced: dict[str, int] = {}
    for event in events:
        cost = catalogue.cost(event)
        if cost is None:
            unpriced[f"{event.provider}/{event.model}"] = unpriced.get(f"{event.provider}/{event.model}", 0) + 1
        priced.append((event, cost or 0.0))
    times = [e.timestamp for e in events] + [g.timestamp for g in gpu_events]
    if not times:
        raise SchemaError(f"{args.events}: no valid events to report on")
    start = min(times) if start is None else start
    end = (max(times) + 1.0) if end is None else end
    if end <= start:
        raise ConfigError(f"--to: the period ends ({end}) before it starts ({start})")
    rules = load_allocation_rules(settings.allocation_file, dims) if settings.allocation_file else []
    gpu_prices = load_gpu_prices(settings.gpu_prices_file) if settings.gpu_prices_file else None
    report = spend_report(priced, gpu_events, dims=dims, group_by=group_by, start=start, end=end,
                          required=settings.required_tags, rules=rules, gpu_prices=gpu_prices)
    report["unpriced_models"] = unpriced
    out = {"json": _json, "csv": _csv, "table": _table}[args.format](report)
    sys.stdout.write(out)
    for model, count in sorted(unpriced.items()):
        print(f"spendsentry report: warning: {count} event(s) of unpriced model {model} counted at $0", file=sys.stderr)
    return 1 if errors or gpu_errors else 0


def _json(report: dict[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"


def _label(key: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v if v is not None else '(none)'}" for k, v in key.items()) or "(all)"


def _money(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"${value:,.{digits}f}"


def _csv(report: dict[str, Any]) -> str:
    """One row per group: the spend table (totals in a last ``TOTAL`` row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    group_by = report["group_by"]
    writer.writerow([*group_by, "cost_usd", "allocated_usd", "tokens", "requests", "cost_per_1k_tokens",
                     "cost_per_request", "previous_usd", "change_usd"])
    previous = {tuple(m["key"].items()): m for m in report["movers"]}
    for row in report["rows"]:
        move = previous.get(tuple(row["key"].items()))
        writer.writerow([*(row["key"].get(d) or "" for d in group_by), row["cost_usd"], row["allocated_usd"],
                         row["tokens"], row["requests"], row["cost_per_1k_tokens"], row["cost_per_request"],
                         move["previous_usd"] if move else "", move["change_usd"] if move else ""])
    total = report["total"]
    writer.writerow(["TOTAL", *([""] * (len(group_by) - 1)), total["cost_usd"], total["allocated_usd"],
                     total["tokens"], total["requests"], total["cost_per_1k_tokens"], total["cost_per_request"],
                     report["previous"]["total"]["cost_usd"], ""])
    return buffer.getvalue()


def _table(report: dict[str, Any]) -> str:
    lines = [f"spend {report['from']} .. {report['to']} by {', '.join(report['group_by']) or '(all)'}", ""]
    rows = [(_label(r["key"]), _money(r["cost_usd"]), _money(r["allocated_usd"]), f"{r['tokens']:,}",
             f"{r['requests']:,}", _money(r["cost_per_1k_tokens"], 4), _money(r["cost_per_request"], 4))
            for r in report["rows"]]
    total = report["total"]
    rows.append(("TOTAL", _money(total["cost_usd"]), _money(total["allocated_usd"]), f"{total['tokens']:,}",
                 f"{total['requests']:,}", _money(total["cost_per_1k_tokens"], 4), _money(total["cost_per_request"], 4)))
    lines += _grid(("group", "spend", "allocated", "tokens", "requests", "per 1k tok", "per request"), rows)
    untagged = report["untagged"]
    if untagged["required"]:
        share = "-" if untagged["share"] is None else f"{untagged['share']:.1%}"
        lines.append(f"untagged ({', '.join(untagged['required'])} missing): {_money(untagged['cost_usd'])} ({share})")
    for rule in report["allocation"]:
        shares = ", ".join(f"{v} {w:.0%}" for v, w in rule["shares"].items()) or "nothing to split by"
        lines.append(f"allocation {rule['rule']}: {_money(rule['pool_usd'])} shared across {rule['across']} by "
                     f"{rule['split_by']}: {_money(rule['allocated_usd'])} allocated ({shares})")
    lines += ["", f"top movers vs {report['previous']['from']} .. {report['previous']['to']} "
                  f"(previous total {_money(report['previous']['total']['cost_usd'])})"]
    movers = [(_label(m["key"]), _money(m["previous_usd"]), _money(m["cost_usd"]), f"{m['change_usd']:+,.2f}",
               "new" if m["change_ratio"] is None else f"{m['change_ratio']:+.1%}") for m in report["movers"]]
    lines += _grid(("group", "previous", "now", "change $", "change %"), movers) if movers else ["  (no change)"]
    gpu = report["gpu"]
    if gpu is not None:
        lines += ["", f"GPUs: {gpu['gpu_hours']:,.1f} GPU-hours, {_money(gpu['cost_usd'])} "
                      f"({_money(gpu['cost_per_gpu_hour'])}/GPU-hour), idle waste {_money(gpu['idle_usd'])}"]
        lines += _grid(("gpu key", "GPU-hours", "utilization", "spend", "idle waste", "per GPU-hour"),
                       [(_label({k: v for k, v in r["key"].items() if v}), f"{r['gpu_hours']:,.1f}",
                         "-" if r["utilization"] is None else f"{r['utilization']:.0%}", _money(r["cost_usd"]),
                         _money(r["idle_usd"]), _money(r["cost_per_gpu_hour"])) for r in gpu["keys"]])
        for fleet in gpu["purchase_options"]:
            head = f"purchase options {fleet['cluster']}/{fleet['gpu_model']} ({fleet['hours']} h):"
            comparison = fleet["comparison"]
            if comparison is None:
                lines.append(f"{head} {fleet['reason']}")
                continue
            options = ", ".join(f"{name} {_money(o['total_usd'])}" for name, o in comparison["options"].items())
            lines.append(f"{head} {options}; cheapest {comparison['cheapest']}")
    if report["unpriced_models"]:
        lines.append("unpriced (counted $0): " + ", ".join(f"{m} x{n}" for m, n in sorted(report["unpriced_models"].items())))
    return "\n".join(lines) + "\n"


def _grid(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> list[str]:
    rows = list(rows)
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return [line(header)] + [line(r) for r in rows]
