"""``spendsentry reconcile --focus BILL.csv --events USAGE.jsonl``: real-time estimate vs the bill.

Prints drift per scope and UTC day (:func:`streams.sources.focus_import.reconcile`) and exits 1 when any
day drifts beyond the tolerance, 0 otherwise (2 on a bad input). Usage events without
``cost_usd`` are priced with the catalogue (``SPENDSENTRY_PRICES_FILE`` merged), as the worker does.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable, Iterator

import orjson

from schemas.errors import ConfigError, SchemaError
from streams.cli.cli_inputs import print_line_errors, stripped_lines


def parse_aliases(items: Iterable[str]) -> dict[str, str]:
    """``["Amazon Web Services=aws.bedrock"]`` -> ``{"Amazon Web Services": "aws.bedrock"}``."""
    out = {}
    for item in items:
        name, sep, alias = item.partition("=")
        if not sep or not name.strip() or not alias.strip():
            raise ConfigError(f"--alias {item!r}: use BILL_PROVIDER=USAGE_PROVIDER")
        out[name.strip()] = alias.strip()
    return out


def parse_scope(text: str) -> tuple[str, ...]:
    """``provider,tags.account`` -> its dimensions, each a usage dimension or ``tags.<name>``."""
    from schemas.usage import DIMENSIONS

    scope = tuple(s.strip() for s in text.split(",") if s.strip())
    if not scope:
        raise ConfigError("--scope: name at least one dimension (e.g. provider, or provider,tags.account)")
    for name in scope:
        if name not in DIMENSIONS and not (name.startswith("tags.") and len(name) > 5):
            raise ConfigError(f"--scope {text}: {name!r} is not a dimension (use {', '.join(DIMENSIONS)} "
                              "or tags.<name>)")
    return scope


def estimated_events(lines: Iterable[bytes], catalogue: Any, errors: list[str]) -> Iterator[dict[str, Any]]:
    from schemas.usage import validate_usage

    for number, raw in enumerate(lines, 1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            data = orjson.loads(raw)
            for item in data if isinstance(data, list) else [data]:
                event = validate_usage(item)
                if event.cost_usd is None and catalogue is not None:
                    event.cost_usd = catalogue.cost(event)
                yield event.to_dict()
        except (orjson.JSONDecodeError, SchemaError) as exc:
            errors.append(f"line {number}: {exc}")


def run_reconcile(args: argparse.Namespace) -> int:
    from streams.core.pricing import PriceCatalogue
    from streams.config import Settings
    from streams.sources.focus_import import import_focus, load_fx_rates, read_focus_rows, reconcile

    if not 0 <= args.tolerance <= 10:
        raise ConfigError(f"--tolerance {args.tolerance}: must be a share between 0 and 10 (0.05 = 5%)")
    scope = parse_scope(args.scope)
    lines = stripped_lines(args.events, "usage events")
    settings = Settings.from_env()
    fx_rates = load_fx_rates(args.fx_rates) if args.fx_rates else None
    billed = import_focus(read_focus_rows(args.focus), fx_rates=fx_rates, tag_map=settings.focus_tag_map)
    print_line_errors("reconcile", args.focus, billed.errors)
    errors: list[str] = []
    catalogue = PriceCatalogue.load(settings.prices_file)
    estimated = list(estimated_events(lines, catalogue, errors))
    print_line_errors("reconcile", args.events, errors)
    if not estimated and not errors:
        raise SchemaError(f"{args.events}: no usage events (the file is empty); nothing to compare with the bill")
    if billed.rows == 0:
        raise SchemaError(f"{args.focus}: no bill rows after the header; nothing to compare the estimate with")
    results = reconcile(estimated, billed.events, scope=scope, tolerance=args.tolerance,
                        provider_aliases=parse_aliases(args.alias or []))
    width = max([len(", ".join(f"{k}={v}" for k, v in r.key.items())) for r in results] + [5])
    print(f"{'scope':<{width}}  {'day':<10}  {'estimated':>12}  {'billed':>12}  {'drift':>12}  {'drift %':>8}  status")
    drifted = 0
    for r in results:
        label = ", ".join(f"{k}={v}" for k, v in r.key.items())
        pct = f"{r.drift_ratio:+.1%}" if r.drift_ratio is not None else "n/a"
        status = "DRIFT" if r.alert is not None else "ok"
        drifted += r.alert is not None
        print(f"{label:<{width}}  {r.day:<10}  {r.estimated_usd:>12,.2f}  {r.billed_usd:>12,.2f}  "
              f"{r.drift_usd:>+12,.2f}  {pct:>8}  {status}")
    print(f"{len(results)} scope-days, {drifted} beyond {args.tolerance:.0%} tolerance; "
          f"{len(estimated)} usage events, {len(billed.events)} bill rows ({len(errors) + len(billed.errors)} bad)",
          file=sys.stderr)
    if errors or billed.errors:
        return 2
    return 1 if drifted else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--focus", required=True, help="FOCUS 1.0-1.3 cost export (CSV)")
    parser.add_argument("--events", required=True, help="usage events (JSON Lines, '-' = stdin): the real-time estimate")
    parser.add_argument("--scope", default="provider", help="dimensions compared, comma-separated (default provider)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="allowed |drift| / billed (default 0.05)")
    parser.add_argument("--fx-rates", metavar="FILE", default=None,
                        help='bill currencies other than USD: a JSON object of USD per unit, e.g. {"EUR": 1.08}')
    parser.add_argument("--alias", action="append", metavar="BILL=USAGE",
                        help="map a bill provider name onto the usage one, e.g. 'Amazon Web Services=aws.bedrock'")
