"""MkDocs hook: renders the HTTP API reference from the OpenAPI document the worker serves.

``docs/reference/http-api.md`` holds the hand-written introduction and a marker line
(``MARKER`` below); at build time the marker is replaced by one section per path and method,
with its parameters, request body and responses, all taken from the ``OPENAPI`` dict (the very
object ``GET /openapi.json`` returns), so the page cannot drift from the code.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- openapi:paths -->"
PAGE = "reference/http-api.md"
METHODS = ("get", "post", "put", "patch", "delete")
#: where the document lives: after the layout move first, then the old flat module
MODULES = ("streams.api.openapi", "streams.openapi")


def load_openapi(repo_root: Path | None = None) -> dict[str, Any]:
    """The ``OPENAPI`` dict, imported from the package (repo root put on ``sys.path`` if needed)."""
    if repo_root is not None and str(repo_root) not in sys.path:
        sys.path.insert(0, str(repo_root))
    errors = []
    for name in MODULES:
        try:
            return importlib.import_module(name).OPENAPI
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # the module exists but one of its own imports is missing: a real error
            errors.append(f"{name}: {exc}")
    raise ModuleNotFoundError("no OpenAPI module found (" + "; ".join(errors) + ")")


def _text(text: Any) -> str:
    """Prose from the document, with ``<`` and ``>`` escaped so ``tags.<name>`` is not read as HTML."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def schema_type(schema: dict[str, Any]) -> str:
    """A short type text: ``string (date-time)``, ``array of object``, ``integer | null``, one of ..."""
    if not schema:
        return "any"
    if "oneOf" in schema or "anyOf" in schema:
        return " or ".join(schema_type(s) for s in schema.get("oneOf", schema.get("anyOf", [])))
    kind = schema.get("type", "object" if "properties" in schema else "any")
    text = " | ".join(kind) if isinstance(kind, list) else kind
    if kind == "array":
        text = f"array of {schema_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and "properties" not in schema:
        extra = schema["additionalProperties"]
        text = f"object of {schema_type(extra) if isinstance(extra, dict) else 'any'}"
    if "format" in schema:
        text += f" ({schema['format']})"
    if "enum" in schema:
        text += ": " + ", ".join(f"`{v}`" for v in schema["enum"])
    return text


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    for word in ("minimum", "maximum", "exclusiveMinimum", "pattern", "default", "example"):
        if word in schema:
            parts.append(f"{word} `{json.dumps(schema[word])}`")
    return ", ".join(parts)


def schema_lines(schema: dict[str, Any], depth: int = 0) -> list[str]:
    """The fields of an object schema as a nested bullet list (arrays of objects: their items)."""
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return schema_lines(schema["items"], depth)
    if "oneOf" in schema:
        lines = []
        for index, option in enumerate(schema["oneOf"], 1):
            sub = schema_lines(option, depth + 1)
            if sub:
                lines.append(f"{'    ' * depth}- option {index} ({schema_type(option)}):")
                lines.extend(sub)
        return lines
    required = set(schema.get("required", ()))
    lines = []
    for name, prop in schema.get("properties", {}).items():
        notes = [schema_type(prop)]
        if name in required:
            notes.append("required")
        if extra := _constraints(prop):
            notes.append(extra)
        text = f"{'    ' * depth}- `{name}` ({'; '.join(notes)})"
        if prop.get("description"):
            text += f": {_text(prop['description'])}"
        lines.append(text)
        lines.extend(schema_lines(prop, depth + 1))
    return lines


def _content(content: dict[str, Any]) -> list[str]:
    out = []
    for media, body in content.items():
        schema = body.get("schema", {})
        out.append(f"`{media}`: {schema_type(schema)}")
        out.append("")
        fields = schema_lines(schema)
        if fields:
            out.extend(fields)
            out.append("")
    return out


def render_operation(path: str, method: str, op: dict[str, Any], shared_params: list[dict[str, Any]],
                     document: dict[str, Any]) -> list[str]:
    lines = [f"### {method.upper()} {path}", "", _text(op.get("summary", "")), ""]
    if op.get("description"):
        lines += [_text(op["description"]), ""]
    security = op.get("security", document.get("security", []))
    if security:
        schemes = ", ".join(name for item in security for name in item)
        lines += [f"**Authentication:** `Authorization: Bearer <token>` (scheme `{schemes}`).", ""]
    else:
        lines += ["**Authentication:** none.", ""]
    params = [*shared_params, *op.get("parameters", [])]
    if params:
        lines += ["**Parameters**", "", "| name | in | type | required | description |", "|---|---|---|---|---|"]
        for p in params:
            schema = p.get("schema", {})
            description = " ".join(x for x in (_text(p.get("description", "")), _constraints(schema)) if x)
            lines.append(f"| `{p['name']}` | {p['in']} | {_cell(schema_type(schema))} | "
                         f"{'yes' if p.get('required') else 'no'} | {_cell(description)} |")
        lines.append("")
    if body := op.get("requestBody"):
        lines += [f"**Request body**{' (required)' if body.get('required') else ''}", ""]
        lines += _content(body.get("content", {}))
    lines += ["**Responses**", "", "| status | meaning | content |", "|---|---|---|"]
    responses = op.get("responses", {})
    for status, response in responses.items():
        media = ", ".join(f"`{m}`" for m in response.get("content", {})) or "none"
        lines.append(f"| {status} | {_cell(_text(response.get('description', '')))} | {media} |")
    lines.append("")
    for status, response in responses.items():
        for media, body in response.get("content", {}).items():
            fields = schema_lines(body.get("schema", {}))
            if fields:
                lines += [f"Response {status} (`{media}`) fields:", "", *fields, ""]
    return lines


def render(document: dict[str, Any]) -> str:
    """Markdown for every path and method of the document, in the document's order."""
    info = document.get("info", {})
    lines = [f"*Generated from the OpenAPI {document.get('openapi', '')} document "
             f"({info.get('title', '')} {info.get('version', '')}) at build time.*", ""]
    for scheme_name, scheme in document.get("components", {}).get("securitySchemes", {}).items():
        lines += [f"Security scheme `{scheme_name}`: {scheme.get('type', '')} {scheme.get('scheme', '')}"
                  f"{': ' + _text(scheme['description']) if scheme.get('description') else ''}", ""]
    for path, item in document.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                lines += render_operation(path, method, item[method], shared, document)
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its marker line {MARKER!r}: nowhere to put the generated reference")
    root = Path(config["config_file_path"]).resolve().parent
    return markdown.replace(MARKER, render(load_openapi(root)))
