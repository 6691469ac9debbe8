"""Typed accessors for request JSON that raise Meta-shaped errors naming the offending field.

Conventions (as Meta's answers): an absent required field -> 131008; a field of the wrong
JSON type -> 100; a value that breaks a documented limit or format -> 131009. ``path`` is
the dotted location used in error details, e.g. ``interactive.action.buttons[1].reply.title``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from simulator.errors import GraphError, invalid, missing, unknown_object, wrong_type
from simulator.media import MediaStore


def child(path: str, key: str | int) -> str:
    """Extend a field path with a key or list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def require_object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """``parent[key]`` as a JSON object."""
    value = parent.get(key)
    if value is None:
        raise missing(child(path, key))
    if not isinstance(value, dict):
        raise wrong_type(child(path, key), "an object")
    return value


def optional_object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    """``parent[key]`` as a JSON object, or None when absent."""
    if parent.get(key) is None:
        return None
    return require_object(parent, key, path)


def check_length(value: str, path: str, *, min_len: int, max_len: int | None) -> str:
    """Enforce a character-length range on a string already known to be a string."""
    if len(value) < min_len:
        if min_len == 1:
            raise invalid(path, "must not be empty.")
        raise invalid(path, f"must be at least {min_len} characters long (got {len(value)}).")
    if max_len is not None and len(value) > max_len:
        raise invalid(path, f"must be at most {max_len} characters long (got {len(value)}).")
    return value


def require_string(
    parent: dict[str, Any],
    key: str,
    path: str,
    *,
    max_len: int | None = None,
    min_len: int = 1,
) -> str:
    """``parent[key]`` as a string within ``[min_len, max_len]`` characters."""
    value = parent.get(key)
    if value is None:
        raise missing(child(path, key))
    if not isinstance(value, str):
        raise wrong_type(child(path, key), "a string")
    return check_length(value, child(path, key), min_len=min_len, max_len=max_len)


def optional_string(
    parent: dict[str, Any],
    key: str,
    path: str,
    *,
    max_len: int | None = None,
    min_len: int = 0,
) -> str | None:
    """Like :func:`require_string`, but None when absent."""
    if parent.get(key) is None:
        return None
    return require_string(parent, key, path, max_len=max_len, min_len=min_len)


def require_list(
    parent: dict[str, Any],
    key: str,
    path: str,
    *,
    min_items: int = 1,
    max_items: int | None = None,
) -> list[Any]:
    """``parent[key]`` as a list with ``[min_items, max_items]`` items."""
    value = parent.get(key)
    if value is None:
        raise missing(child(path, key))
    if not isinstance(value, list):
        raise wrong_type(child(path, key), "an array")
    if len(value) < min_items:
        raise invalid(child(path, key), f"must have at least {min_items} item(s).")
    if max_items is not None and len(value) > max_items:
        raise invalid(child(path, key), f"must have at most {max_items} items (got {len(value)}).")
    return value


def require_item_object(items: list[Any], index: int, path: str) -> dict[str, Any]:
    """``items[index]`` as a JSON object."""
    value = items[index]
    if not isinstance(value, dict):
        raise wrong_type(child(path, index), "an object")
    return value


def optional_bool(parent: dict[str, Any], key: str, path: str) -> bool | None:
    """``parent[key]`` as a boolean, or None when absent."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise wrong_type(child(path, key), "a boolean")
    return value


def require_number(
    parent: dict[str, Any], key: str, path: str, *, low: float, high: float
) -> float:
    """``parent[key]`` as a number (or numeric string) within ``[low, high]``."""
    value = parent.get(key)
    if value is None:
        raise missing(child(path, key))
    if isinstance(value, bool):
        raise wrong_type(child(path, key), "a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise wrong_type(child(path, key), "a number") from None
    if not low <= number <= high:
        raise invalid(child(path, key), f"must be between {low:g} and {high:g}.")
    return number


def require_http_url(parent: dict[str, Any], key: str, path: str) -> str:
    """``parent[key]`` as an absolute http(s) URL."""
    url = require_string(parent, key, path)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise invalid(child(path, key), "must be an absolute http:// or https:// URL.")
    return url


def require_choice(parent: dict[str, Any], key: str, path: str, choices: tuple[str, ...]) -> str:
    """``parent[key]`` as one of ``choices``."""
    value = require_string(parent, key, path)
    if value not in choices:
        raise invalid(child(path, key), f"must be one of {', '.join(choices)} (got {value!r}).")
    return value


def check_media_object(
    obj: dict[str, Any],
    path: str,
    *,
    media: MediaStore,
    now: float,
    allow_caption: bool,
    allow_filename: bool,
) -> None:
    """A media object: exactly one of ``id`` (an uploaded, unexpired media id) or ``link``.

    ``caption`` (<= 1024) is allowed only when ``allow_caption``; ``filename`` only when
    ``allow_filename``.
    """
    has_id = obj.get("id") is not None
    has_link = obj.get("link") is not None
    if has_id and has_link:
        raise invalid(path, "use exactly one of id or link, not both.")
    if not has_id and not has_link:
        raise missing(f"{path}.id or {path}.link")
    if has_id:
        media_id = require_string(obj, "id", path)
        if media.get(media_id, now) is None:
            error = unknown_object(media_id)
            raise GraphError(
                error.code,
                f"{child(path, 'id')}: media id '{media_id}' was not uploaded or has expired.",
            )
    else:
        require_http_url(obj, "link", path)
    if "caption" in obj:
        if not allow_caption:
            raise invalid(child(path, "caption"), "is not supported for this media type.")
        require_string(obj, "caption", path, max_len=1024, min_len=0)
    if "filename" in obj:
        if not allow_filename:
            raise invalid(child(path, "filename"), "is only supported for documents.")
        require_string(obj, "filename", path)
