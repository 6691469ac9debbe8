"""Message templates: the template list, its paging, and validating/rendering template sends.

A template send is checked the way Meta checks it: name and language must exist (132001),
status must be APPROVED (PAUSED 132015, DISABLED 132016, anything else 132001), body
parameters must match the template's placeholders in number (132000) and, for NAMED
templates, by ``parameter_name``; header and button parameters must be present (131008) and
of the template's format (132012). The placeholders are then filled so tests can assert the
exact text the contact read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from simulator.default_templates import DEFAULT_TEMPLATES
from simulator.errors import ErrorCode, GraphError, invalid, missing, wrong_type
from simulator.fields import (
    check_media_object,
    child,
    require_item_object,
    require_number,
    require_object,
    require_string,
)
from simulator.media import MediaStore

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MAX_RENDERED_BODY = 1024
MAX_BUTTONS = 10
# Meta rejects body parameter text with newlines, tabs or more than 4 consecutive spaces.
BAD_PARAMETER_TEXT = re.compile(r"[\n\t]| {5,}")


class TemplateStatus(str, Enum):
    """Template review states (Graph's ``status``)."""

    APPROVED = "APPROVED"
    PENDING = "PENDING"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    IN_APPEAL = "IN_APPEAL"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"
    FLAGGED = "FLAGGED"
    REINSTATED = "REINSTATED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    ARCHIVED = "ARCHIVED"
    LOCKED = "LOCKED"


class TemplateCategory(str, Enum):
    """Template categories; the lower-cased value is the pricing category."""

    MARKETING = "MARKETING"
    UTILITY = "UTILITY"
    AUTHENTICATION = "AUTHENTICATION"


class ParameterFormat(str, Enum):
    """``{{1}}`` placeholders (POSITIONAL) or ``{{first_name}}`` placeholders (NAMED)."""

    POSITIONAL = "POSITIONAL"
    NAMED = "NAMED"


# Template button type -> the ``sub_type`` a send must use to address it.
BUTTON_SUB_TYPES: dict[str, str] = {
    "QUICK_REPLY": "quick_reply",
    "URL": "url",
    "OTP": "url",
    "COPY_CODE": "copy_code",
    "FLOW": "flow",
    "PHONE_NUMBER": "phone_number",
}
MEDIA_HEADER_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")


def placeholders(text: str) -> list[str]:
    """Distinct placeholder names in order of first appearance (``"1"``, ``"first_name"``)."""
    seen: list[str] = []
    for name in PLACEHOLDER.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


def fill(text: str, values: dict[str, str]) -> str:
    """Replace each ``{{name}}`` with ``values[name]``."""
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


@dataclass(frozen=True)
class Template:
    """One template translation (a name + language pair), in Graph's listing shape."""

    name: str
    language: str
    status: TemplateStatus
    category: TemplateCategory
    parameter_format: ParameterFormat
    components: tuple[dict[str, Any], ...]
    id: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Template:
        """Build from a listing-shaped dict; raises ValueError on a malformed definition."""
        try:
            name = str(data["name"])
            language = str(data["language"])
            category = TemplateCategory(str(data["category"]).upper())
        except KeyError as exc:
            raise ValueError(f"template definition lacks {exc.args[0]!r}: {data!r}") from None
        status = TemplateStatus(str(data.get("status", "APPROVED")).upper())
        components = data.get("components", [])
        if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
            raise ValueError(f"template {name}/{language}: components must be a list of objects")
        body = next((c for c in components if str(c.get("type")).upper() == "BODY"), None)
        if body is None or not isinstance(body.get("text"), str):
            raise ValueError(f"template {name}/{language}: a BODY component with text is required")
        if "parameter_format" in data:
            parameter_format = ParameterFormat(str(data["parameter_format"]).upper())
        elif all(p.isdigit() for p in placeholders(body["text"])):
            parameter_format = ParameterFormat.POSITIONAL
        else:
            parameter_format = ParameterFormat.NAMED
        template_id = str(data.get("id") or _stable_id(name, language))
        return cls(
            name, language, status, category, parameter_format, tuple(components), template_id
        )

    def to_json(self, fields: Iterable[str] | None = None) -> dict[str, Any]:
        """Listing representation; ``fields`` restricts the keys (``id`` is always present)."""
        full: dict[str, Any] = {
            "name": self.name,
            "language": self.language,
            "status": self.status.value,
            "category": self.category.value,
            "id": self.id,
            "parameter_format": self.parameter_format.value,
            "components": [dict(c) for c in self.components],
        }
        if fields is None:
            return full
        wanted = set(fields) | {"id"}
        return {key: value for key, value in full.items() if key in wanted}

    def component(self, kind: str) -> dict[str, Any] | None:
        """The first component of type ``kind`` (``HEADER``, ``BODY``, ``FOOTER``, ``BUTTONS``)."""
        return next((c for c in self.components if str(c.get("type")).upper() == kind), None)

    @property
    def body_text(self) -> str:
        body = self.component("BODY")
        assert body is not None  # guaranteed by from_json
        return str(body["text"])

    @property
    def buttons(self) -> list[dict[str, Any]]:
        component = self.component("BUTTONS")
        return list(component.get("buttons", [])) if component else []


def _stable_id(name: str, language: str) -> str:
    """A numeric id that stays the same across restarts for the same name and language."""
    digest = hashlib.sha256(f"{name}:{language}".encode()).hexdigest()
    return str(10**15 + int(digest[:15], 16) % (9 * 10**15))


@dataclass(frozen=True)
class RenderedTemplate:
    """What the contact sees for an accepted template send."""

    template: Template
    body: str
    header: dict[str, Any] | None = None
    footer: str | None = None
    buttons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Text header, body and footer, one per line (the readable message)."""
        parts = []
        if self.header and self.header.get("format") == "TEXT":
            parts.append(str(self.header["text"]))
        parts.append(self.body)
        if self.footer:
            parts.append(self.footer)
        return "\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header,
            "body": self.body,
            "footer": self.footer,
            "buttons": self.buttons,
        }


@dataclass(frozen=True)
class TemplatePage:
    """One page of a template listing."""

    items: list[Template]
    has_next: bool
    has_previous: bool


def encode_cursor(template: Template) -> str:
    return base64.urlsafe_b64encode(f"tpl:{template.id}".encode()).decode()


def decode_cursor(cursor: str) -> str:
    """The template id inside a cursor; raises GraphError (100) for a malformed cursor."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.startswith("tpl:"):
        raise GraphError(ErrorCode.INVALID_PARAMETER, f"Invalid paging cursor {cursor!r}.")
    return text[4:]


class TemplateStore:
    """The WABA's templates, kept in insertion order (the listing order)."""

    def __init__(self, templates: Iterable[Template]) -> None:
        self._initial = list(templates)
        self._templates: dict[tuple[str, str], Template] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the templates the store was created with."""
        self._templates = {(t.name, t.language): t for t in self._initial}

    def all(self) -> list[Template]:
        return list(self._templates.values())

    def get(self, name: str, language: str) -> Template | None:
        return self._templates.get((name, language))

    def languages(self, name: str) -> list[str]:
        """Languages in which a template named ``name`` exists."""
        return [t.language for t in self._templates.values() if t.name == name]

    def upsert(self, template: Template) -> Template | None:
        """Add or replace a translation; returns the one it replaced, if any."""
        key = (template.name, template.language)
        previous = self._templates.get(key)
        self._templates[key] = template
        return previous

    def page(
        self,
        *,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        status: TemplateStatus | None = None,
    ) -> TemplatePage:
        """Up to ``limit`` templates after (or before) a cursor, optionally filtered by status."""
        items = [t for t in self._templates.values() if status is None or t.status is status]
        ids = [t.id for t in items]

        def position(cursor: str) -> int:
            template_id = decode_cursor(cursor)
            if template_id not in ids:
                raise GraphError(ErrorCode.INVALID_PARAMETER, f"Invalid paging cursor {cursor!r}.")
            return ids.index(template_id)

        if after is not None:
            start = position(after) + 1
            end = start + limit
        elif before is not None:
            end = position(before)
            start = max(0, end - limit)
        else:
            start, end = 0, limit
        return TemplatePage(items[start:end], has_next=end < len(items), has_previous=start > 0)


def load_templates(path: Path | None) -> list[Template]:
    """Templates from a YAML/JSON file, or the built-in list when ``path`` is None.

    The file holds a list of listing-shaped templates, or ``{"templates": [...]}``, or a saved
    Graph listing ``{"data": [...]}``.
    """
    if path is None:
        raw: Any = DEFAULT_TEMPLATES
    else:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        if isinstance(raw, dict):
            raw = raw.get("templates", raw.get("data"))
        if not isinstance(raw, list):
            raise ValueError(f"{path}: expected a list of templates")
    return [Template.from_json(item) for item in raw]


# --- validating and rendering a template send -------------------------------------------


def render_template_send(
    obj: dict[str, Any], *, store: TemplateStore, media: MediaStore, now: float
) -> RenderedTemplate:
    """Validate the ``template`` object of a send and return what the contact will read.

    Raises GraphError with Meta's code and a ``details`` string naming the offending field.
    """
    name = require_string(obj, "name", "template", max_len=512)
    language = require_object(obj, "language", "template")
    code = require_string(language, "code", "template.language")
    template = store.get(name, code)
    if template is None:
        available = store.languages(name)
        details = (
            f"template.name: template '{name}' does not exist in language '{code}' "
            f"(available: {', '.join(available)})."
            if available
            else f"template.name: template '{name}' does not exist."
        )
        raise GraphError(ErrorCode.TEMPLATE_NOT_FOUND, details, http_status=404)
    if template.status is TemplateStatus.PAUSED:
        raise GraphError(
            ErrorCode.TEMPLATE_PAUSED, f"template.name: template '{name}' ({code}) is PAUSED."
        )
    if template.status is TemplateStatus.DISABLED:
        raise GraphError(
            ErrorCode.TEMPLATE_DISABLED,
            f"template.name: template '{name}' ({code}) is DISABLED.",
        )
    if template.status is not TemplateStatus.APPROVED:
        raise GraphError(
            ErrorCode.TEMPLATE_NOT_FOUND,
            f"template.name: template '{name}' ({code}) is {template.status.value}, not APPROVED.",
            http_status=404,
        )
    sent = _split_components(obj)
    header = _render_header(template, sent.header, media=media, now=now)
    body = _render_body(template, sent.body)
    buttons = _render_buttons(template, sent.buttons)
    footer = template.component("FOOTER")
    return RenderedTemplate(
        template=template,
        body=body,
        header=header,
        footer=str(footer["text"]) if footer and footer.get("text") else None,
        buttons=buttons,
    )


@dataclass
class _SentComponents:
    header: tuple[str, dict[str, Any]] | None = None
    body: tuple[str, dict[str, Any]] | None = None
    buttons: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _split_components(obj: dict[str, Any]) -> _SentComponents:
    """The send's header/body/button components, each with its field path."""
    result = _SentComponents()
    raw = obj.get("components")
    if raw is None:
        return result
    if not isinstance(raw, list):
        raise wrong_type("template.components", "an array")
    for index in range(len(raw)):
        path = child("template.components", index)
        component = require_item_object(raw, index, "template.components")
        kind = require_string(component, "type", path).lower()
        if kind == "button":
            result.buttons.append((path, component))
        elif kind in ("header", "body"):
            if getattr(result, kind) is not None:
                raise invalid(child(path, "type"), f"only one {kind} component is allowed.")
            setattr(result, kind, (path, component))
        else:
            raise invalid(child(path, "type"), "must be one of header, body, button.")
    return result


def _parameters(component: dict[str, Any], path: str) -> list[dict[str, Any]]:
    raw = component.get("parameters", [])
    if not isinstance(raw, list):
        raise wrong_type(child(path, "parameters"), "an array")
    return [require_item_object(raw, i, child(path, "parameters")) for i in range(len(raw))]


def _text_value(param: dict[str, Any], path: str, *, body: bool) -> str:
    """The display value of a text/currency/date_time parameter."""
    kind = require_string(param, "type", path).lower()
    if kind == "text":
        value = require_string(param, "text", path)
        if body and BAD_PARAMETER_TEXT.search(value):
            raise GraphError(
                ErrorCode.TEMPLATE_PARAM_CONTENT,
                f"{child(path, 'text')}: must not contain newlines, tabs or more than 4 "
                "consecutive spaces.",
            )
        return value
    if body and kind == "currency":
        currency = require_object(param, "currency", path)
        require_string(currency, "code", child(path, "currency"))
        require_number(currency, "amount_1000", child(path, "currency"), low=-1e15, high=1e15)
        return require_string(currency, "fallback_value", child(path, "currency"))
    if body and kind == "date_time":
        date_time = require_object(param, "date_time", path)
        return require_string(date_time, "fallback_value", child(path, "date_time"))
    allowed = "text, currency, date_time" if body else "text"
    raise GraphError(
        ErrorCode.TEMPLATE_PARAM_FORMAT,
        f"{child(path, 'type')}: '{kind}' does not match the template; expected {allowed}.",
    )


def _render_body(template: Template, sent: tuple[str, dict[str, Any]] | None) -> str:
    expected = placeholders(template.body_text)
    path, component = sent if sent else ("template.components[body]", {})
    params = _parameters(component, path)
    params_path = child(path, "parameters")
    if len(params) != len(expected):
        raise GraphError(
            ErrorCode.TEMPLATE_PARAM_COUNT,
            f"{params_path}: template '{template.name}' ({template.language}) body expects "
            f"{len(expected)} parameter(s), got {len(params)}.",
        )
    values: dict[str, str] = {}
    if template.parameter_format is ParameterFormat.POSITIONAL:
        # Parameter i fills the i-th placeholder by number ({{1}}, {{2}}, ...).
        numbered = sorted(expected, key=lambda name: int(name) if name.isdigit() else 0)
        for index, (name, param) in enumerate(zip(numbered, params, strict=True)):
            values[name] = _text_value(param, child(params_path, index), body=True)
    else:
        for index, param in enumerate(params):
            param_path = child(params_path, index)
            param_name = require_string(param, "parameter_name", param_path)
            if param_name not in expected:
                raise GraphError(
                    ErrorCode.TEMPLATE_PARAM_COUNT,
                    f"{child(param_path, 'parameter_name')}: '{param_name}' is not a parameter "
                    f"of the template (expected: {', '.join(expected)}).",
                )
            if param_name in values:
                raise GraphError(
                    ErrorCode.TEMPLATE_PARAM_COUNT,
                    f"{child(param_path, 'parameter_name')}: '{param_name}' is given twice.",
                )
            values[param_name] = _text_value(param, param_path, body=True)
    rendered = fill(template.body_text, values)
    if len(rendered) > MAX_RENDERED_BODY:
        raise GraphError(
            ErrorCode.TEMPLATE_TEXT_TOO_LONG,
            f"{params_path}: the body with parameters is {len(rendered)} characters; "
            f"the maximum is {MAX_RENDERED_BODY}.",
        )
    return rendered


def _render_header(
    template: Template,
    sent: tuple[str, dict[str, Any]] | None,
    *,
    media: MediaStore,
    now: float,
) -> dict[str, Any] | None:
    definition = template.component("HEADER")
    header_format = str(definition.get("format", "TEXT")).upper() if definition else None
    text = str(definition.get("text", "")) if definition else ""
    variables = placeholders(text) if header_format == "TEXT" else []
    needs_parameter = header_format in (*MEDIA_HEADER_FORMATS, "LOCATION") or bool(variables)
    params = _parameters(sent[1], sent[0]) if sent else []
    params_path = child(sent[0] if sent else "template.components[header]", "parameters")
    if not needs_parameter:
        if params:
            raise GraphError(
                ErrorCode.TEMPLATE_PARAM_COUNT,
                f"{params_path}: template '{template.name}' has no header parameters, "
                f"got {len(params)}.",
            )
        return {"format": "TEXT", "text": text} if header_format == "TEXT" else None
    if not params:
        expected = header_format.lower() if header_format != "TEXT" else "text"
        raise missing(f"{params_path}[0] (a {expected} header parameter)")
    if len(params) != 1:
        raise GraphError(
            ErrorCode.TEMPLATE_PARAM_COUNT,
            f"{params_path}: the header expects 1 parameter, got {len(params)}.",
        )
    param, param_path = params[0], child(params_path, 0)
    if header_format == "TEXT":
        value = _text_value(param, param_path, body=False)
        return {"format": "TEXT", "text": fill(text, {variables[0]: value})}
    kind = require_string(param, "type", param_path).lower()
    expected_kind = header_format.lower()
    if kind != expected_kind:
        raise GraphError(
            ErrorCode.TEMPLATE_PARAM_FORMAT,
            f"{child(param_path, 'type')}: header parameter is '{kind}' but the template "
            f"header is {header_format}.",
        )
    obj = require_object(param, kind, param_path)
    if header_format == "LOCATION":
        location_path = child(param_path, "location")
        require_number(obj, "latitude", location_path, low=-90, high=90)
        require_number(obj, "longitude", location_path, low=-180, high=180)
    else:
        check_media_object(
            obj,
            child(param_path, kind),
            media=media,
            now=now,
            allow_caption=False,
            allow_filename=kind == "document",
        )
    return {"format": header_format, kind: dict(obj)}


def _render_buttons(
    template: Template, sent: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    definitions = template.buttons
    rendered = [
        {key: value for key, value in d.items() if key in ("type", "text", "url", "phone_number")}
        for d in definitions
    ]
    addressed: set[int] = set()
    for path, component in sent:
        index = _button_index(component, path, len(definitions))
        if index in addressed:
            raise invalid(child(path, "index"), f"button {index} is addressed twice.")
        addressed.add(index)
        definition = definitions[index]
        button_type = str(definition.get("type", "")).upper()
        expected_sub_type = BUTTON_SUB_TYPES.get(button_type, button_type.lower())
        sub_type = require_string(component, "sub_type", path).lower()
        if sub_type != expected_sub_type:
            raise GraphError(
                ErrorCode.TEMPLATE_PARAM_FORMAT,
                f"{child(path, 'sub_type')}: button {index} of the template is {button_type}; "
                f"use sub_type '{expected_sub_type}', not '{sub_type}'.",
            )
        params = _parameters(component, path)
        params_path = child(path, "parameters")
        value = _button_parameter(definition, button_type, params, params_path)
        if button_type == "URL" and value is not None:
            rendered[index]["url"] = fill(str(definition["url"]), {"1": value})
        elif button_type == "QUICK_REPLY" and value is not None:
            rendered[index]["payload"] = value
        elif button_type in ("OTP", "COPY_CODE") and value is not None:
            rendered[index]["code"] = value
    for index, definition in enumerate(definitions):
        if index not in addressed and _button_needs_parameter(definition):
            button_type = str(definition.get("type", "")).upper()
            raise missing(
                f"template.components[button index {index}] (sub_type "
                f"'{BUTTON_SUB_TYPES[button_type]}' with the {button_type} button's parameter)"
            )
    return rendered


def _button_index(component: dict[str, Any], path: str, count: int) -> int:
    raw = component.get("index")
    if raw is None:
        raise missing(child(path, "index"))
    if isinstance(raw, bool) or not str(raw).isdigit():
        raise invalid(child(path, "index"), f"must be a button position, got {raw!r}.")
    index = int(raw)
    if index >= min(count, MAX_BUTTONS):
        raise invalid(
            child(path, "index"), f"the template has {count} button(s); index {index} is invalid."
        )
    return index


def _button_needs_parameter(definition: dict[str, Any]) -> bool:
    button_type = str(definition.get("type", "")).upper()
    if button_type == "URL":
        return bool(placeholders(str(definition.get("url", ""))))
    return button_type in ("OTP", "COPY_CODE")


def _button_parameter(
    definition: dict[str, Any],
    button_type: str,
    params: list[dict[str, Any]],
    params_path: str,
) -> str | None:
    """Check a button component's parameters; returns the single value, if any."""
    expected_kind = {
        "URL": "text",
        "OTP": "text",
        "QUICK_REPLY": "payload",
        "COPY_CODE": "coupon_code",
    }.get(button_type)
    takes_parameter = (
        _button_needs_parameter(definition) or button_type == "QUICK_REPLY"
    ) and expected_kind is not None
    if not takes_parameter:
        if params and button_type != "FLOW":
            raise GraphError(
                ErrorCode.TEMPLATE_PARAM_COUNT,
                f"{params_path}: this {button_type} button takes no parameters, got {len(params)}.",
            )
        return None
    if not params:
        if button_type == "QUICK_REPLY":
            return None
        raise missing(f"{params_path}[0] (the {button_type} button's {expected_kind})")
    if len(params) != 1:
        raise GraphError(
            ErrorCode.TEMPLATE_PARAM_COUNT,
            f"{params_path}: the button expects 1 parameter, got {len(params)}.",
        )
    param_path = child(params_path, 0)
    kind = require_string(params[0], "type", param_path).lower()
    if kind != expected_kind:
        raise GraphError(
            ErrorCode.TEMPLATE_PARAM_FORMAT,
            f"{child(param_path, 'type')}: must be '{expected_kind}' for a {button_type} "
            f"button, got '{kind}'.",
        )
    max_len = 15 if button_type in ("OTP", "COPY_CODE") else None
    return require_string(params[0], expected_kind, param_path, max_len=max_len)
