"""The encoding of every state record the worker writes to Kafka (table changelogs): never pickle.

A record is ``b"SS"``, a format version byte, then MessagePack (msgspec). Decoding runs no code from
the record: it builds plain values (None, bools, numbers, strings, bytes, lists, tuples, dicts,
sets, deques, arrays) and instances of **allow-listed classes only**, by creating the instance
without calling anything of the record's choosing (``cls.__new__(cls)``) and setting its
attributes. A class is allowed when it is defined in one of :data:`ALLOWED_MODULES` (detectors,
incident lifecycle, alert and budget records, the engine's own state classes, River's statistics and
time-series models), so a detector added to ``detectors/`` needs no registration here; anything
else (``os.system``, ``builtins.eval``, a class merely imported into an allowed module) is refused.

River's Rust statistics (``river._river_rust.stats``) are rebuilt from their constructor
arguments (numbers only) and their own fixed-size binary state.

A record that does not decode (pickle bytes from an older version, garbage, a refused class) raises
:class:`StateDecodeError`; callers use :func:`load_or_skip`, which logs it, counts it in
:data:`SKIPPED` and returns None: the key, ledger or tracker starts fresh (docs/operations/upgrades.md).

Tree form (before MessagePack): a primitive stays itself; every container is a list whose first
item is a tag: ``["l", *items]`` list, ``["t", *items]`` tuple, ``["d", k1, v1, ...]`` dict,
``["s", *items]`` set, ``["q", maxlen, *items]`` deque, ``["a", typecode, bytes]`` array,
``["o", "module:Class", name1, value1, ...]`` object, ``["r", "Class", args, state]`` River Rust stat.

Batches of records (a partition's snapshot delta or a page of its image,
``streams/worker/partition_engines.py``) are :func:`dumps_entries`: ``b"SE"``, a version byte, then
MessagePack of two lists of ``[name, record]`` pairs (window records, model records), decoded into
exactly that shape or refused.
"""

from __future__ import annotations

import importlib
import logging
import sys
from array import array
from collections import Counter, deque
from operator import attrgetter
from typing import Any, Callable

import msgspec

from streams.core.buckets import Bucket

log = logging.getLogger("spendsentry.state")

MAGIC = b"SS"
VERSION = 1
HEADER = MAGIC + bytes([VERSION])
#: modules (and packages, with a trailing dot) whose classes may appear in state records
ALLOWED_MODULES = ("detectors.", "alerts.lifecycle", "schemas.alert", "schemas.budget", "schemas.gpu",
                   "streams.core.", "river.stats.", "river.proba.", "river.time_series.")
RUST_MODULE = "river._river_rust.stats"
#: records skipped since the process started, by what they were meant to restore
SKIPPED: Counter[str] = Counter()
MAX_DEPTH = 64

ENTRIES_HEADER = b"SE" + bytes([VERSION])
#: (window records, model records), each a list of (key name, record of :func:`dumps`)
Entries = tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]

_encoder = msgspec.msgpack.Encoder()
_decode_entries = msgspec.msgpack.Decoder(Entries).decode
_decode_msgpack = msgspec.msgpack.Decoder().decode
_PRIMITIVES = frozenset({type(None), bool, int, float, str, bytes})


class StateDecodeError(ValueError):
    """A state record that is not one this version wrote: skipped, never executed."""


class StateEncodeError(TypeError):
    """A value of a type state records may not hold (a programming error, found by the tests)."""


def dumps(value: Any) -> bytes:
    """One state record: header + MessagePack of the tagged tree of ``value``."""
    return HEADER + _encoder.encode(_tree(value))


def dumps_window(key: dict[str, str], open_buckets: dict[float, Bucket], *totals: float) -> bytes:
    """``dumps((key, (open_buckets, *totals)))`` of a key's window state (the record written most:
    one per key and snapshot), the same bytes without the generic walk."""
    buckets: list[Any] = ["d"]
    for start, bucket in open_buckets.items():
        buckets += (start, _bucket_tree(bucket))
    return HEADER + _encoder.encode(["t", _dict_tree(key), ["t", buckets, *totals]])


def loads(blob: bytes) -> Any:
    """The value of a record written by :func:`dumps`; :class:`StateDecodeError` for anything else."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or bytes(blob[:3]) != HEADER:
        head = bytes(blob[:3]) if isinstance(blob, (bytes, bytearray, memoryview)) else b""
        why = "pickle, written by an older version: never loaded" if head[:1] == b"\x80" else f"unknown header {head!r}"
        raise StateDecodeError(why)
    try:
        tree = _decode_msgpack(bytes(blob[3:]))
    except msgspec.DecodeError as exc:
        raise StateDecodeError(f"not MessagePack: {exc}") from None
    return _value(tree, 0)


def dumps_entries(windows: list[tuple[str, bytes]], models: list[tuple[str, bytes]]) -> bytes:
    """One batch record: window and model records by key name."""
    return ENTRIES_HEADER + _encoder.encode((windows, models))


def loads_entries(blob: bytes) -> Entries:
    """The ``(windows, models)`` of a batch written by :func:`dumps_entries`; :class:`StateDecodeError` else."""
    if not isinstance(blob, (bytes, bytearray)) or bytes(blob[:3]) != ENTRIES_HEADER:
        raise StateDecodeError("not a batch of state records")
    try:
        return _decode_entries(memoryview(blob)[3:])
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError: a batch of the wrong shape
        raise StateDecodeError(f"malformed batch: {exc}") from None


def load_or_skip(blob: bytes, what: str) -> Any | None:
    """:func:`loads`, or None for a record that does not decode (logged and counted in :data:`SKIPPED`)."""
    try:
        return loads(blob)
    except StateDecodeError as exc:
        SKIPPED[what] += 1
        log.warning("skipped a %s state record that does not decode (%s); that state starts fresh", what, exc)
        return None


# -- encoding ------------------------------------------------------------------------------
def _tree(value: Any) -> Any:
    kind = type(value)
    if kind in _PRIMITIVES:
        return value
    return _ENCODERS.get(kind, _object_tree)(value)


def _list_tree(value: list) -> list:
    return ["l", *[v if type(v) in _PRIMITIVES else _tree(v) for v in value]]


def _tuple_tree(value: tuple) -> list:
    return ["t", *[v if type(v) in _PRIMITIVES else _tree(v) for v in value]]


def _dict_tree(value: dict) -> list:
    out: list[Any] = ["d"]
    primitives = _PRIMITIVES
    for k, v in value.items():
        out += (k if type(k) in primitives else _tree(k), v if type(v) in primitives else _tree(v))
    return out


def _set_tree(value: set) -> list:
    try:
        items = sorted(value)  # one state, one record: a restored set re-encodes to the same bytes
    except TypeError:
        items = list(value)
    return ["s", *[v if type(v) in _PRIMITIVES else _tree(v) for v in items]]


def _deque_tree(value: deque) -> list:
    return ["q", value.maxlen, *[_tree(v) for v in value]]


def _array_tree(value: array) -> list:
    return ["a", value.typecode, value.tobytes()]


def _bucket_tree(value: Bucket) -> list:
    """The tree :func:`_object_tree` makes of a bucket (the record written most: one per key and
    snapshot), without its generic walk."""
    ids = value.ids
    return ["o", "streams.core.buckets:Bucket", "start", value.start, "cost", value.cost, "requests", value.requests,
            "events", value.events, "input_tokens", value.input_tokens, "output_tokens", value.output_tokens,
            "cached_input_tokens", value.cached_input_tokens, "unpriced", value.unpriced,
            "ids", _set_tree(ids) if type(ids) is set else _tree(ids)]


_ENCODERS: dict[type, Callable[[Any], list]] = {
    list: _list_tree, tuple: _tuple_tree, dict: _dict_tree, set: _set_tree, deque: _deque_tree, array: _array_tree,
    Bucket: _bucket_tree,
}
_SLOTS: dict[type, tuple[str, ...]] = {}


def _attribute_names(cls: type) -> tuple[str, ...]:
    names = _SLOTS.get(cls)
    if names is None:
        found: list[str] = []
        for klass in reversed(cls.__mro__):
            slots = klass.__dict__.get("__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                if name not in ("__dict__", "__weakref__") and name not in found:
                    found.append(name)
        names = _SLOTS[cls] = tuple(found)
    return names


def _object_tree(value: Any) -> list:
    cls = type(value)
    plan = _PLANS.get(cls)
    if plan is None:
        if cls.__module__ == RUST_MODULE:
            return ["r", cls.__qualname__, _tree(list(value.__getnewargs__())), value.__getstate__()]
        plan = _plan(cls)
    name, slots, get_slots = plan
    out: list[Any] = ["o", name]
    if slots:
        try:
            values = get_slots(value)
        except AttributeError:  # a slot never set: write the ones that are
            pairs = [(n, getattr(value, n)) for n in slots if hasattr(value, n)]
        else:
            pairs = zip(slots, values if len(slots) > 1 else (values,))
        for slot, item in pairs:
            out += (slot, item if type(item) in _PRIMITIVES else _tree(item))
    for slot, item in getattr(value, "__dict__", _NO_DICT).items():
        out += (slot, item if type(item) in _PRIMITIVES else _tree(item))
    return out


_NO_DICT: dict[str, Any] = {}
#: per class: its record name, its slot names and one getter for all of them
_PLANS: dict[type, tuple[str, tuple[str, ...], Callable[[Any], Any]]] = {}


def _plan(cls: type) -> tuple[str, tuple[str, ...], Callable[[Any], Any]]:
    if not _allowed(cls.__module__):
        raise StateEncodeError(f"{cls.__module__}.{cls.__qualname__} may not be written to a state record")
    slots = _attribute_names(cls)
    plan = _PLANS[cls] = (f"{cls.__module__}:{cls.__qualname__}", slots, attrgetter(*slots) if slots else _none)
    return plan


def _none(_: Any) -> None:
    return None


def _allowed(module: str) -> bool:
    return any(module == prefix or (prefix.endswith(".") and module.startswith(prefix)) for prefix in ALLOWED_MODULES)


# -- decoding ------------------------------------------------------------------------------
def _value(tree: Any, depth: int) -> Any:
    kind = type(tree)
    if kind is not list:
        if kind in _PRIMITIVES:
            return tree
        raise StateDecodeError(f"unexpected {kind.__name__} in a state record")
    if not tree or depth > MAX_DEPTH:
        raise StateDecodeError("empty or too deeply nested container")
    tag = tree[0]
    depth += 1
    try:
        if tag == "l":
            return [_value(v, depth) for v in tree[1:]]
        if tag == "t":
            return tuple(_value(v, depth) for v in tree[1:])
        if tag == "d":
            items = tree[1:]
            return {_value(items[i], depth): _value(items[i + 1], depth) for i in range(0, len(items) - 1, 2)}
        if tag == "s":
            return {_value(v, depth) for v in tree[1:]}
        if tag == "q":
            return deque((_value(v, depth) for v in tree[2:]), _value(tree[1], depth))
        if tag == "a" and len(tree) == 3 and isinstance(tree[1], str) and isinstance(tree[2], bytes):
            out = array(tree[1])
            out.frombytes(tree[2])
            return out
        if tag == "o":
            return _object(tree, depth)
        if tag == "r":
            return _rust(tree, depth)
    except StateDecodeError:
        raise
    except (TypeError, ValueError, IndexError, OverflowError) as exc:  # unhashable key, bad typecode, ...
        raise StateDecodeError(f"malformed {tag!r} container: {exc}") from None
    raise StateDecodeError(f"unknown tag {str(tag)[:20]!r}")


def _resolve(name: Any) -> type:
    """An allow-listed class by ``module:Qualified.Name``; never anything else."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise StateDecodeError(f"bad class name {str(name)[:80]!r}")
    module_name, qualname = name.split(":")
    parts = qualname.split(".")
    if not _allowed(module_name) or not all(p.isidentifier() and not p.startswith("__") for p in parts):
        raise StateDecodeError(f"class {name[:80]!r} is not allowed in state records")
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)  # only modules of this project and River
        except ImportError:
            raise StateDecodeError(f"class {name[:80]!r}: no such module") from None
    found: Any = module
    for part in parts:
        found = getattr(found, part, None)
    if not isinstance(found, type) or found.__module__ != module_name or found.__qualname__ != qualname:
        raise StateDecodeError(f"class {name[:80]!r} is not defined there")
    return found


def _object(tree: list, depth: int) -> Any:
    cls = _resolve(tree[1])
    obj = cls.__new__(cls)
    items = tree[2:]
    if len(items) % 2:
        raise StateDecodeError("odd attribute list")
    for i in range(0, len(items), 2):
        name = items[i]
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
            raise StateDecodeError(f"bad attribute name {str(name)[:40]!r}")
        try:
            object.__setattr__(obj, name, _value(items[i + 1], depth))
        except AttributeError as exc:
            raise StateDecodeError(f"{tree[1]}: {exc}") from None
    return obj


def _rust(tree: list, depth: int) -> Any:
    if len(tree) != 4 or not isinstance(tree[1], str) or not isinstance(tree[3], bytes):
        raise StateDecodeError("malformed River statistic")
    rust = sys.modules.get(RUST_MODULE) or importlib.import_module(RUST_MODULE)
    cls = getattr(rust, tree[1], None) if tree[1].isidentifier() and tree[1].startswith("Rs") else None
    args = _value(tree[2], depth)
    if not isinstance(cls, type) or not isinstance(args, list) or not all(type(a) in (int, float) for a in args):
        raise StateDecodeError(f"River statistic {str(tree[1])[:40]!r} refused")
    try:
        obj = cls.__new__(cls, *args)
        if len(tree[3]) != len(obj.__getstate__()):  # fixed-size states only: never feed Rust a short read
            raise StateDecodeError(f"River statistic {tree[1]}: state of the wrong size")
        obj.__setstate__(tree[3])
    except StateDecodeError:
        raise
    except BaseException as exc:  # a Rust panic is a BaseException; let the interpreter's own ones through
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)) or (
                not isinstance(exc, Exception) and type(exc).__name__ != "PanicException"):
            raise
        raise StateDecodeError(f"River statistic {tree[1]}: {type(exc).__name__}") from None
    return obj
