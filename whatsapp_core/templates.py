"""The message template catalogue: what is approved, where each value comes from, the payload.

Outside the 24-hour customer service window only approved templates reach a contact (fact
sheet sections 4, 6, 7). :func:`prepare_template` picks the contact's language, fills every
placeholder from the contact, a slot, message metadata or a literal (with a fallback), checks
what Meta would reject, and returns the Cloud API message object, or a
:class:`TemplateRefusal` saying why not.

The catalogue file (``templates/catalogue.yml``, outside ``data/`` so Rasa does not read it)::

    templates:
      - name: follow_up                  # Meta's template name
        category: UTILITY                # MARKETING | UTILITY | AUTHENTICATION   (Meta)
        parameter_format: POSITIONAL     # POSITIONAL {{1}} | NAMED {{first_name}} (Meta)
        fallback_language: en            # local: used when the contact's language is absent
        parameters:                      # local: where each value comes from
          "1":                           # a body placeholder: "1", "2", ... or a name
            source: contact.name         # see sources below
            fallback: {it: cliente, en: there}   # per language, or one string for all
          header:   {source: "literal:https://example.com/a.jpg"}  # header variable/media
          button_0: {source: "slot:order_code"}  # URL {{1}} suffix / quick-reply payload / code
        languages:                       # Meta: one entry per approved-or-not translation
          it:
            status: APPROVED             # APPROVED PENDING REJECTED PAUSED DISABLED ...
            id: "1689556908129832"       # optional, Meta's id of this translation
            body: "Ciao {{1}}, ..."
            header: {format: TEXT, text: "Hello"}       # or {format: IMAGE|VIDEO|DOCUMENT,
                                                        #     example: https://...}
            footer: "Reply STOP to unsubscribe"
            buttons:
              - {type: QUICK_REPLY, text: "Stop promotions"}
              - {type: URL, text: "Shop now", url: "https://shop.example.com/sale/{{1}}"}

Sources: ``contact.name`` (the contact's WhatsApp profile name, the help centre's
``$contact.name``), ``slot:<slot_name>``, ``metadata:<dotted.path>`` (into the message
metadata, e.g. ``metadata:whatsapp.wa_id``), ``literal:<text>``. A value that is missing or
blank uses the fallback for the chosen language; no value and no fallback refuses the send.

``parameters`` and ``fallback_language`` are local; everything under ``languages`` plus
``category`` and ``parameter_format`` mirror Meta and are overwritten by
``tools/sync_templates.py`` (:meth:`TemplateCatalogue.replace_from_graph`), which keeps the
local parts of templates that still exist.

Send rules (Meta's, as the simulator enforces them): only ``APPROVED`` translations are sent
(a webhook ``FLAGGED``/``REINSTATED``/``UNARCHIVED`` leaves the template approved); the body
placeholders must be exactly the mapped ones (132000); parameter text must not contain
newlines, tabs or more than four consecutive spaces (132007) — whitespace runs are collapsed
to one space; the body with values must fit 1024 characters (132005). Media headers use the
``header`` mapping, else the translation's ``example`` link; a digits-only value is sent as
an uploaded media id, anything else as a link. URL buttons with a ``{{1}}`` suffix, ``OTP``
and ``COPY_CODE`` buttons need their ``button_<index>`` value; quick-reply payloads are sent
when mapped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MAX_BODY_CHARS = 1024
APPROVED = "APPROVED"
HEADER_KEY = "header"
BUTTON_KEY_PREFIX = "button_"
MEDIA_HEADER_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
STILL_APPROVED_EVENTS = frozenset({"FLAGGED", "REINSTATED", "UNARCHIVED"})
"""Status webhook events after which the template is (still) approved and sendable."""

FILE_HEADER = (
    "# WhatsApp message templates: schema in whatsapp_core/templates.py.\n"
    "# `parameters` and `fallback_language` are local; `category`, `parameter_format` and\n"
    "# `languages` mirror Meta and are refreshed by `python -m tools.sync_templates`.\n"
)


class CatalogueError(ValueError):
    """The catalogue file (or a Graph listing) is malformed; the message names the field."""


class ParameterFormat(str, Enum):
    """``{{1}}`` placeholders (POSITIONAL) or ``{{first_name}}`` placeholders (NAMED)."""

    POSITIONAL = "POSITIONAL"
    NAMED = "NAMED"


class SourceKind(str, Enum):
    """Where a parameter value comes from (the part of ``source`` before ``:``)."""

    CONTACT_NAME = "contact.name"
    SLOT = "slot"
    METADATA = "metadata"
    LITERAL = "literal"


class RefusalReason(str, Enum):
    """Why :func:`prepare_template` will not send a template."""

    NOT_FOUND = "not_found"
    NO_LANGUAGE = "no_language"
    NOT_APPROVED = "not_approved"
    MISSING_PARAMETER = "missing_parameter"
    PARAMETER_COUNT_MISMATCH = "parameter_count_mismatch"
    BODY_TOO_LONG = "body_too_long"


def placeholders(text: str) -> list[str]:
    """Distinct placeholder names in order of first appearance (``"1"``, ``"first_name"``)."""
    seen: list[str] = []
    for name in PLACEHOLDER.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


def sanitize(value: Any) -> str:
    """Parameter text Meta accepts: every whitespace run (newline, tab, spaces) → one space."""
    return " ".join(str(value).split())


def _language_key(code: str) -> str:
    return code.strip().replace("-", "_").lower()


def _base_language(code: str) -> str:
    return _language_key(code).split("_", 1)[0]


# ------------------------------------------------------------------------------ model
def _parse_source(source: str) -> tuple[SourceKind, str]:
    """``(kind, argument)`` of a source; CatalogueError for an unknown or empty one."""
    if source == SourceKind.CONTACT_NAME.value:
        return SourceKind.CONTACT_NAME, ""
    head, _, argument = source.partition(":")
    if head in (SourceKind.SLOT.value, SourceKind.METADATA.value, SourceKind.LITERAL.value):
        if argument:
            return SourceKind(head), argument
        raise CatalogueError(f"parameter source {source!r} needs a value after ':'")
    raise CatalogueError(
        f"unknown parameter source {source!r} (use contact.name, slot:<name>, "
        "metadata:<dotted.path> or literal:<text>)"
    )


@dataclass(frozen=True, slots=True)
class ParameterMapping:
    """Where one parameter's value comes from, and what to use when it is missing.

    Built by :meth:`parse` from ``source`` (``contact.name``, ``slot:<name>``,
    ``metadata:<dotted.path>`` or ``literal:<text>``); ``argument`` is the part after
    ``:``. ``fallback`` is one string, or one per language code.
    """

    kind: SourceKind
    argument: str
    fallback: str | Mapping[str, str] | None = None

    @classmethod
    def parse(
        cls, source: str, fallback: str | Mapping[str, str] | None = None
    ) -> ParameterMapping:
        """Raises CatalogueError for an unknown source."""
        kind, argument = _parse_source(source.strip())
        return cls(kind, argument, fallback)

    @property
    def source(self) -> str:
        """The source as written in the catalogue."""
        if self.kind is SourceKind.CONTACT_NAME:
            return self.kind.value
        return f"{self.kind.value}:{self.argument}"

    def fallback_for(self, language: str) -> str | None:
        """The fallback for ``language`` (exact code, then its base language), or None."""
        if self.fallback is None or isinstance(self.fallback, str):
            return self.fallback
        by_key = {_language_key(code): text for code, text in self.fallback.items()}
        return by_key.get(_language_key(language), by_key.get(_base_language(language)))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source}
        if self.fallback is not None:
            data["fallback"] = (
                self.fallback if isinstance(self.fallback, str) else dict(self.fallback)
            )
        return data


@dataclass(frozen=True, slots=True)
class TemplateHeader:
    """A header: ``format`` TEXT (with ``text``) or IMAGE/VIDEO/DOCUMENT/LOCATION (with an
    ``example`` link)."""

    format: str
    text: str | None = None
    example: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": self.format}
        if self.text is not None:
            data["text"] = self.text
        if self.example is not None:
            data["example"] = self.example
        return data


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """One button as Meta lists it: ``type`` (QUICK_REPLY, URL, PHONE_NUMBER, OTP,
    COPY_CODE, FLOW, ...), ``text``, ``url`` for URL buttons; ``extra`` keeps Meta's other
    keys (``phone_number``, ``otp_type``, ``example``...) for the round trip."""

    type: str
    text: str
    url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "text": self.text}
        if self.url is not None:
            data["url"] = self.url
        return data | dict(self.extra)


@dataclass(frozen=True, slots=True)
class Translation:
    """One language of a template, as Meta approved (or not) it."""

    language: str
    status: str
    body: str
    header: TemplateHeader | None = None
    footer: str | None = None
    buttons: tuple[TemplateButton, ...] = ()
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status}
        if self.id is not None:
            data["id"] = self.id
        data["body"] = self.body
        if self.header is not None:
            data["header"] = self.header.to_dict()
        if self.footer is not None:
            data["footer"] = self.footer
        if self.buttons:
            data["buttons"] = [button.to_dict() for button in self.buttons]
        return data


@dataclass(frozen=True, slots=True)
class Template:
    """A template: Meta's translations plus the local parameter mappings."""

    name: str
    category: str
    parameter_format: ParameterFormat
    languages: Mapping[str, Translation]
    parameters: Mapping[str, ParameterMapping] = field(default_factory=dict)
    fallback_language: str | None = None

    def translation(self, language: str) -> Translation | None:
        """The translation registered under ``language`` (``en-US`` and ``en_US`` match)."""
        key = _language_key(language)
        return next((t for code, t in self.languages.items() if _language_key(code) == key), None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "category": self.category,
            "parameter_format": self.parameter_format.value,
        }
        if self.fallback_language is not None:
            data["fallback_language"] = self.fallback_language
        if self.parameters:
            data["parameters"] = {key: m.to_dict() for key, m in self.parameters.items()}
        data["languages"] = {code: t.to_dict() for code, t in self.languages.items()}
        return data


# ----------------------------------------------------------------------- parsing
def _required_text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if value is None or isinstance(value, (dict, list)) or not str(value).strip():
        raise CatalogueError(f"{where}: '{key}' is required")
    return str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CatalogueError(f"{where}: expected a mapping")
    return value


def _parameter(data: Any, where: str) -> ParameterMapping:
    if isinstance(data, str):
        data = {"source": data}
    data = _mapping(data, where)
    fallback = data.get("fallback")
    if isinstance(fallback, Mapping):
        fallback = {str(code): str(text) for code, text in fallback.items()}
    elif fallback is not None:
        fallback = str(fallback)
    source = _required_text(data, "source", where)
    try:
        return ParameterMapping.parse(source, fallback)
    except CatalogueError as error:
        raise CatalogueError(f"{where}: {error}") from None


def _header(data: Any, where: str) -> TemplateHeader | None:
    if data is None:
        return None
    data = _mapping(data, where)
    return TemplateHeader(
        format=_required_text(data, "format", where).upper(),
        text=_optional_text(data.get("text")),
        example=_optional_text(data.get("example")),
    )


def _button(data: Any, where: str) -> TemplateButton:
    data = _mapping(data, where)
    return TemplateButton(
        type=_required_text(data, "type", where).upper(),
        text=str(data.get("text") or ""),
        url=_optional_text(data.get("url")),
        extra={k: v for k, v in data.items() if k not in ("type", "text", "url")},
    )


def _translation(code: str, data: Any, where: str) -> Translation:
    data = _mapping(data, where)
    buttons = data.get("buttons") or []
    if not isinstance(buttons, list):
        raise CatalogueError(f"{where}: 'buttons' must be a list")
    return Translation(
        language=code,
        status=_required_text(data, "status", where).upper(),
        body=_required_text(data, "body", where),
        header=_header(data.get("header"), f"{where}.header"),
        footer=_optional_text(data.get("footer")),
        buttons=tuple(_button(b, f"{where}.buttons[{i}]") for i, b in enumerate(buttons)),
        id=_optional_text(data.get("id")),
    )


def _parameter_format(value: Any, where: str) -> ParameterFormat:
    try:
        return ParameterFormat(str(value or ParameterFormat.POSITIONAL.value).upper())
    except ValueError:
        raise CatalogueError(f"{where}: parameter_format must be POSITIONAL or NAMED") from None


def _template(data: Any, where: str) -> Template:
    data = _mapping(data, where)
    name = _required_text(data, "name", where)
    where = f"template {name!r}"
    languages = _mapping(data.get("languages"), f"{where}.languages")
    if not languages:
        raise CatalogueError(f"{where}: 'languages' needs at least one language")
    parameters = _mapping(data.get("parameters"), f"{where}.parameters")
    return Template(
        name=name,
        category=_required_text(data, "category", where).upper(),
        parameter_format=_parameter_format(data.get("parameter_format"), where),
        languages={
            str(code): _translation(str(code), t, f"{where}.languages.{code}")
            for code, t in languages.items()
        },
        parameters={
            str(key): _parameter(m, f"{where}.parameters.{key}") for key, m in parameters.items()
        },
        fallback_language=_optional_text(data.get("fallback_language")),
    )


def _graph_translation(item: Mapping[str, Any], where: str) -> Translation:
    """A translation from one ``data[]`` item of ``GET /{waba_id}/message_templates``."""
    components = item.get("components") or []
    by_type = {str(c.get("type", "")).upper(): c for c in components if isinstance(c, Mapping)}
    body = by_type.get("BODY", {})
    header = None
    if "HEADER" in by_type:
        raw = by_type["HEADER"]
        example = raw.get("example") if isinstance(raw.get("example"), Mapping) else {}
        samples = example.get("header_handle") or example.get("header_text") or [None]
        header = TemplateHeader(
            format=str(raw.get("format") or "TEXT").upper(),
            text=_optional_text(raw.get("text")),
            example=_optional_text(samples[0]),
        )
    buttons = by_type.get("BUTTONS", {}).get("buttons") or []
    return Translation(
        language=str(item.get("language")),
        status=str(item.get("status") or "").upper(),
        body=_required_text(body, "text", f"{where} BODY component"),
        header=header,
        footer=_optional_text(by_type.get("FOOTER", {}).get("text")),
        buttons=tuple(_button(b, f"{where}.buttons[{i}]") for i, b in enumerate(buttons)),
        id=_optional_text(item.get("id")),
    )


# --------------------------------------------------------------------- catalogue
@dataclass(frozen=True, slots=True)
class SyncSummary:
    """What :meth:`TemplateCatalogue.replace_from_graph` changed.

    ``added``/``removed``: template names; ``status_changes``: ``(name, language, old,
    new)`` (``old`` None for a new translation); ``unmapped``: templates whose body
    placeholders lack a parameter mapping in some language (they cannot be sent until
    mapped in the catalogue file).
    """

    added: tuple[str, ...]
    removed: tuple[str, ...]
    status_changes: tuple[tuple[str, str, str | None, str], ...]
    unmapped: tuple[str, ...]


class TemplateCatalogue:
    """The templates by name; status updates and syncs replace templates, never edit them."""

    def __init__(self, templates: Iterable[Template] = ()) -> None:
        self._templates: dict[str, Template] = {t.name: t for t in templates}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TemplateCatalogue:
        """Build from the file's structure (``{"templates": [...]}``); CatalogueError if bad."""
        items = data.get("templates") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise CatalogueError("the catalogue needs a 'templates' list")
        templates = [_template(item, f"templates[{i}]") for i, item in enumerate(items)]
        names = [t.name for t in templates]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise CatalogueError(f"template names appear twice: {', '.join(duplicates)}")
        return cls(templates)

    @classmethod
    def load(cls, path: str | Path) -> TemplateCatalogue:
        """Read a catalogue YAML file; CatalogueError (naming the file) if malformed."""
        try:
            return cls.from_dict(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
        except (CatalogueError, yaml.YAMLError) as error:
            raise CatalogueError(f"{path}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"templates": [t.to_dict() for t in self._templates.values()]}

    def dump(self, path: str | Path) -> None:
        """Write the catalogue as YAML (with a header comment; other comments are not kept)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)
        Path(path).write_text(FILE_HEADER + text, encoding="utf-8")

    @property
    def templates(self) -> tuple[Template, ...]:
        return tuple(self._templates.values())

    def get(self, name: str) -> Template | None:
        return self._templates.get(name)

    def update_status(self, name: str, language: str, status: str) -> bool:
        """Apply a ``message_template_status_update`` webhook's ``event``.

        ``FLAGGED``, ``REINSTATED`` and ``UNARCHIVED`` leave the translation ``APPROVED``
        (Meta keeps flagged templates sendable until it pauses or disables them); any other
        event becomes the status. Returns False when the catalogue has no such template and
        language (``en-US`` matches ``en_US``).
        """
        template = self._templates.get(name)
        translation = template.translation(language) if template else None
        if template is None or translation is None:
            return False
        event = status.strip().upper()
        new_status = APPROVED if event in STILL_APPROVED_EVENTS else event
        languages = dict(template.languages)
        languages[translation.language] = replace(translation, status=new_status)
        self._templates[name] = replace(template, languages=languages)
        return True

    def replace_from_graph(self, data: Iterable[Mapping[str, Any]]) -> SyncSummary:
        """Become what Meta lists (``data[]`` items of every page of
        ``GET /{waba_id}/message_templates``), keeping the local ``parameters`` and
        ``fallback_language`` of templates that exist on both sides. Raises CatalogueError
        for an item without name, language, category or body text (nothing is changed).
        """
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for index, raw in enumerate(data):
            where = f"data[{index}]"
            item = _mapping(raw, where)
            _required_text(item, "name", where)
            _required_text(item, "language", where)
            grouped.setdefault(str(item["name"]), []).append(item)
        templates: list[Template] = []
        for name, items in grouped.items():
            where = f"template {name!r}"
            local = self._templates.get(name)
            first = items[0]
            templates.append(
                Template(
                    name=name,
                    category=_required_text(first, "category", where).upper(),
                    parameter_format=_parameter_format(first.get("parameter_format"), where),
                    languages={
                        str(i["language"]): _graph_translation(i, f"{where}.{i['language']}")
                        for i in items
                    },
                    parameters=local.parameters if local else {},
                    fallback_language=local.fallback_language if local else None,
                )
            )
        changes = []
        for template in templates:
            old = self._templates.get(template.name)
            for code, translation in template.languages.items():
                before = old.translation(code) if old else None
                if before is None or before.status != translation.status:
                    old_status = before.status if before else None
                    changes.append((template.name, code, old_status, translation.status))
        summary = SyncSummary(
            added=tuple(t.name for t in templates if t.name not in self._templates),
            removed=tuple(n for n in self._templates if n not in grouped),
            status_changes=tuple(changes),
            unmapped=tuple(t.name for t in templates if _unmapped(t)),
        )
        self._templates = {t.name: t for t in templates}
        return summary


def _body_keys(template: Template) -> set[str]:
    return {
        key
        for key in template.parameters
        if key != HEADER_KEY and not key.startswith(BUTTON_KEY_PREFIX)
    }


def _unmapped(template: Template) -> bool:
    mapped = _body_keys(template)
    return any(set(placeholders(t.body)) - mapped for t in template.languages.values())


# ------------------------------------------------------------------------ prepare
@dataclass(frozen=True, slots=True)
class ContactContext:
    """Who the template goes to: WhatsApp profile name, language (``it``, ``en_US``...;
    from a slot or a guess), the conversation's slots and the last message's metadata."""

    profile_name: str | None = None
    language: str | None = None
    slots: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResolvedParameter:
    """One filled value: its key (placeholder, ``header``, ``button_<i>``), the value, the
    ``source`` it came from, and whether the fallback was used."""

    key: str
    value: str
    source: str
    used_fallback: bool


@dataclass(frozen=True, slots=True)
class PreparedTemplate:
    """A template ready to send.

    ``parameters``: ``(key, value)`` pairs in send order (body placeholders, then
    ``header`` and ``button_<i>``). ``rendered_text``: the body with values filled, what the
    contact reads. ``payload``: the Cloud API message object ``{"type": "template",
    "template": {...}}`` without ``to``/``messaging_product`` (the sender adds those).
    """

    name: str
    language: str
    category: str
    parameters: tuple[tuple[str, str], ...]
    rendered_text: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TemplateRefusal:
    """Why a template cannot be sent: ``reason``, a readable ``detail``, and where relevant
    the ``language`` tried, its ``status`` and the ``parameter`` at fault."""

    name: str
    reason: RefusalReason
    detail: str
    language: str | None = None
    status: str | None = None
    parameter: str | None = None


@dataclass(frozen=True, slots=True)
class TemplatePreview:
    """For agents: the text the contact would read and where every value came from."""

    name: str
    language: str
    text: str
    values: tuple[ResolvedParameter, ...]

    def describe(self) -> str:
        """The text, then one line per value: ``{{1}} = 'Sheena' (contact.name)``;
        header and button values are labelled ``header`` and ``button_<i>``."""
        lines = [self.text]
        for value in self.values:
            is_body = value.key != HEADER_KEY and not value.key.startswith(BUTTON_KEY_PREFIX)
            label = f"{{{{{value.key}}}}}" if is_body else value.key
            origin = f"fallback, {value.source} was empty" if value.used_fallback else value.source
            lines.append(f"{label} = {value.value!r} ({origin})")
        return "\n".join(lines)


def _choose_translation(
    template: Template, contact: ContactContext, default_language: str
) -> Translation | TemplateRefusal:
    """The first APPROVED translation among the contact's language, the template's fallback
    language and ``default_language`` (each exact, then by base language: ``it_IT`` → ``it``)."""
    candidates: list[Translation] = []
    for wanted in (contact.language, template.fallback_language, default_language):
        if not wanted:
            continue
        exact = template.translation(wanted)
        by_base = sorted(
            (t for t in template.languages.values()
             if _base_language(t.language) == _base_language(wanted)),
            key=lambda t: _language_key(t.language) != _base_language(t.language),
        )
        for translation in ([exact] if exact else []) + by_base:
            if translation not in candidates:
                candidates.append(translation)
    if not candidates:
        return TemplateRefusal(
            template.name,
            RefusalReason.NO_LANGUAGE,
            f"no translation in {contact.language or '-'}, {template.fallback_language or '-'} "
            f"or {default_language} (available: {', '.join(template.languages)})",
        )
    approved = next((t for t in candidates if t.status == APPROVED), None)
    if approved is None:
        first = candidates[0]
        return TemplateRefusal(
            template.name,
            RefusalReason.NOT_APPROVED,
            f"{template.name} ({first.language}) is {first.status}, not APPROVED",
            language=first.language,
            status=first.status,
        )
    return approved


def _metadata_value(metadata: Mapping[str, Any], path: str) -> Any:
    value: Any = metadata
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _raw_value(mapping: ParameterMapping, contact: ContactContext) -> Any:
    kind = mapping.kind
    if kind is SourceKind.CONTACT_NAME:
        return contact.profile_name
    if kind is SourceKind.SLOT:
        return contact.slots.get(mapping.argument)
    if kind is SourceKind.METADATA:
        return _metadata_value(contact.metadata, mapping.argument)
    return mapping.argument


def _resolve(
    template: Template, key: str, contact: ContactContext, language: str
) -> ResolvedParameter | TemplateRefusal:
    mapping = template.parameters.get(key)
    if mapping is None:
        return TemplateRefusal(
            template.name,
            RefusalReason.MISSING_PARAMETER,
            f"no parameter mapping for {key!r} in the catalogue",
            language=language,
            parameter=key,
        )
    raw = _raw_value(mapping, contact)
    value = "" if raw is None or isinstance(raw, (dict, list)) else sanitize(raw)
    if value:
        return ResolvedParameter(key, value, mapping.source, used_fallback=False)
    fallback = sanitize(mapping.fallback_for(language) or "")
    if fallback:
        return ResolvedParameter(key, fallback, mapping.source, used_fallback=True)
    return TemplateRefusal(
        template.name,
        RefusalReason.MISSING_PARAMETER,
        f"{key!r} ({mapping.source}) has no value and no fallback for {language}",
        language=language,
        parameter=key,
    )


def _text_parameter(value: str, name: str | None) -> dict[str, Any]:
    """A text parameter; NAMED templates add ``parameter_name``."""
    parameter: dict[str, Any] = {"type": "text", "text": value}
    if name is not None:
        parameter["parameter_name"] = name
    return parameter


@dataclass(frozen=True, slots=True)
class _Component:
    """A component of the send and the values that went into it."""

    payload: dict[str, Any]
    values: tuple[ResolvedParameter, ...]


def _header_component(
    template: Template, translation: Translation, contact: ContactContext
) -> _Component | TemplateRefusal | None:
    header = translation.header
    if header is None:
        return None
    language = translation.language
    if header.format == "TEXT":
        variables = placeholders(header.text or "")
        if not variables:
            return None
        resolved = _resolve(template, HEADER_KEY, contact, language)
        if isinstance(resolved, TemplateRefusal):
            return resolved
        named = template.parameter_format is ParameterFormat.NAMED
        parameter = _text_parameter(resolved.value, variables[0] if named else None)
        return _Component({"type": "header", "parameters": [parameter]}, (resolved,))
    if header.format not in MEDIA_HEADER_FORMATS:
        return TemplateRefusal(
            template.name,
            RefusalReason.MISSING_PARAMETER,
            f"{header.format} headers cannot be filled from the catalogue",
            language=language,
            parameter=HEADER_KEY,
        )
    if HEADER_KEY in template.parameters or not header.example:
        resolved = _resolve(template, HEADER_KEY, contact, language)
        if isinstance(resolved, TemplateRefusal):
            return resolved
    else:
        resolved = ResolvedParameter(HEADER_KEY, header.example, "example", used_fallback=False)
    kind = header.format.lower()
    media = {"id" if resolved.value.isdigit() else "link": resolved.value}
    return _Component(
        {"type": "header", "parameters": [{"type": kind, kind: media}]}, (resolved,)
    )


def _button_components(
    template: Template, translation: Translation, contact: ContactContext
) -> list[_Component] | TemplateRefusal:
    components = []
    for index, button in enumerate(translation.buttons):
        key = f"{BUTTON_KEY_PREFIX}{index}"
        needs_value = button.type in ("OTP", "COPY_CODE") or (
            button.type == "URL" and bool(placeholders(button.url or ""))
        )
        mapped_reply = button.type == "QUICK_REPLY" and key in template.parameters
        if not needs_value and not mapped_reply:
            continue
        resolved = _resolve(template, key, contact, translation.language)
        if isinstance(resolved, TemplateRefusal):
            return resolved
        if button.type == "QUICK_REPLY":
            sub_type, parameter = "quick_reply", {"type": "payload", "payload": resolved.value}
        elif button.type == "COPY_CODE":
            sub_type = "copy_code"
            parameter = {"type": "coupon_code", "coupon_code": resolved.value}
        else:
            sub_type, parameter = "url", {"type": "text", "text": resolved.value}
        payload = {
            "type": "button",
            "sub_type": sub_type,
            "index": str(index),
            "parameters": [parameter],
        }
        components.append(_Component(payload, (resolved,)))
    return components


def _body_component(
    template: Template, translation: Translation, contact: ContactContext
) -> tuple[_Component, str] | TemplateRefusal:
    """The body component and the filled body text."""
    language = translation.language
    expected = placeholders(translation.body)
    mapped = _body_keys(template)
    if set(expected) != mapped:
        return TemplateRefusal(
            template.name,
            RefusalReason.PARAMETER_COUNT_MISMATCH,
            f"body of {template.name} ({language}) has placeholders {sorted(expected)} but "
            f"the catalogue maps {sorted(mapped)}",
            language=language,
        )
    named = template.parameter_format is ParameterFormat.NAMED
    if not named:
        expected.sort(key=lambda key: int(key) if key.isdigit() else 0)
    values = []
    for key in expected:
        resolved = _resolve(template, key, contact, language)
        if isinstance(resolved, TemplateRefusal):
            return resolved
        values.append(resolved)
    filled = {v.key: v.value for v in values}
    rendered = PLACEHOLDER.sub(lambda match: filled[match.group(1)], translation.body)
    if len(rendered) > MAX_BODY_CHARS:
        return TemplateRefusal(
            template.name,
            RefusalReason.BODY_TOO_LONG,
            f"the body with values is {len(rendered)} characters; Meta's limit is "
            f"{MAX_BODY_CHARS}",
            language=language,
        )
    parameters = [_text_parameter(v.value, v.key if named else None) for v in values]
    return _Component({"type": "body", "parameters": parameters}, tuple(values)), rendered


@dataclass(frozen=True, slots=True)
class _Prepared:
    prepared: PreparedTemplate
    values: tuple[ResolvedParameter, ...]


def _prepare(
    catalogue: TemplateCatalogue, name: str, contact: ContactContext, default_language: str
) -> _Prepared | TemplateRefusal:
    template = catalogue.get(name)
    if template is None:
        return TemplateRefusal(name, RefusalReason.NOT_FOUND, f"no template named {name!r}")
    translation = _choose_translation(template, contact, default_language)
    if isinstance(translation, TemplateRefusal):
        return translation
    body = _body_component(template, translation, contact)
    if isinstance(body, TemplateRefusal):
        return body
    body_component, rendered = body
    header = _header_component(template, translation, contact)
    if isinstance(header, TemplateRefusal):
        return header
    buttons = _button_components(template, translation, contact)
    if isinstance(buttons, TemplateRefusal):
        return buttons
    components = [c for c in (header, body_component) if c is not None] + buttons
    values = tuple(v for c in components for v in c.values)
    message: dict[str, Any] = {"name": name, "language": {"code": translation.language}}
    sent = [c.payload for c in components if c.payload["parameters"]]
    if sent:
        message["components"] = sent
    prepared = PreparedTemplate(
        name=name,
        language=translation.language,
        category=template.category,
        parameters=tuple((v.key, v.value) for v in values),
        rendered_text=rendered,
        payload={"type": "template", "template": message},
    )
    return _Prepared(prepared, values)


def prepare_template(
    catalogue: TemplateCatalogue,
    name: str,
    contact: ContactContext,
    *,
    default_language: str = "en",
) -> PreparedTemplate | TemplateRefusal:
    """The send of template ``name`` to ``contact``, or why it cannot be sent.

    Language: the first APPROVED translation among the contact's language, the template's
    ``fallback_language`` and ``default_language`` (each exact, then base language); when
    none is approved, ``not_approved`` with the status of the first one found. Then every
    parameter must resolve (value or fallback, see the module docstring) and the filled
    body must fit 1024 characters. Pure: the same inputs give the same result.
    """
    result = _prepare(catalogue, name, contact, default_language)
    return result if isinstance(result, TemplateRefusal) else result.prepared


def preview(
    catalogue: TemplateCatalogue,
    name: str,
    contact: ContactContext,
    *,
    default_language: str = "en",
) -> TemplatePreview | TemplateRefusal:
    """What :func:`prepare_template` would send, for an agent to check before sending."""
    result = _prepare(catalogue, name, contact, default_language)
    if isinstance(result, TemplateRefusal):
        return result
    prepared = result.prepared
    return TemplatePreview(prepared.name, prepared.language, prepared.rendered_text, result.values)
