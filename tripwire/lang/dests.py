"""sjson-style paths to write parameters into trigger templates (parameter `dest`).

Argo Events writes each resolved parameter into the trigger's template with a tidwall/sjson
path, so manifests ported from it carry sjson `dest` paths. This module implements that path
language over Python data as produced by `json.loads`, the write-side twin of the gjson reader
in `tripwire.lang.paths`. It is a module of its own because the two languages share no code: sjson
has no wildcards, queries or modifiers, only dotted keys, `\\` escapes, `-1` to append and `:1`
to force a numeric key to be a map key.

A path is parsed once into a `DestPath` (`compile_dest` is LRU-cached), whose `set` and
`delete` mutate the data in place; parameters are applied per firing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from tripwire import errors

__all__ = ["DestPath", "compile_dest", "delete", "set_value"]


class _DestKey:
    __slots__ = ("append", "forced", "index", "name", "position")

    def __init__(self, name: str, *, forced: bool, position: int) -> None:
        self.name = name
        self.forced = forced
        self.position = position
        numeric = not forced and name.isascii() and name.isdigit()
        self.index = int(name) if numeric else None
        self.append = not forced and name == "-1"

    @property
    def wants_list(self) -> bool:
        return self.index is not None or self.append


def _container_for(key: _DestKey) -> dict[str, Any] | list[Any]:
    return [] if key.wants_list else {}


class DestPath:
    """A compiled sjson path. `set` and `delete` mutate the data in place and return the root.

    The root is new only when `data` is not a dict or list (e.g. None): then a container is
    created for the first key. Intermediate values that are not containers are replaced, like
    sjson does; a key that cannot apply (a name on an array) raises errors.ExpressionError.
    """

    __slots__ = ("_keys", "single_key", "text")

    def __init__(self, text: str, keys: Sequence[_DestKey]) -> None:
        self.text = text
        self._keys = tuple(keys)
        only = self._keys[0] if len(self._keys) == 1 else None
        # The name when this path is one object key: on a dict, `set` is `data[name] = value`.
        self.single_key = (
            only.name if only is not None and only.index is None and not only.append else None
        )

    def _mismatch(self, key: _DestKey) -> errors.ExpressionError:
        return errors.ExpressionError(
            f"cannot use key {key.name!r} on an array (use an index or -1)",
            text=self.text,
            position=key.position,
        )

    def set(self, data: Any, value: Any) -> Any:
        """Set `value` at this path in `data`; returns the (possibly new) root."""
        keys = self._keys
        root = data if isinstance(data, dict | list) else _container_for(keys[0])
        current: dict[str, Any] | list[Any] = root
        last = len(keys) - 1
        for i, key in enumerate(keys):
            if i == last:
                self._store(current, key, value)
                break
            child = self._child(current, key)
            if not isinstance(child, dict | list):
                child = _container_for(keys[i + 1])
                self._store(current, key, child)
            current = child
        return root

    def _child(self, container: dict[str, Any] | list[Any], key: _DestKey) -> Any:
        if isinstance(container, dict):
            return container.get(key.name)
        if key.index is not None:
            return container[key.index] if key.index < len(container) else None
        if key.append:
            return None
        raise self._mismatch(key)

    def _store(self, container: dict[str, Any] | list[Any], key: _DestKey, value: Any) -> None:
        if isinstance(container, dict):
            container[key.name] = value
        elif key.append:
            container.append(value)
        elif key.index is not None:
            if key.index < len(container):
                container[key.index] = value
            else:
                container.extend([None] * (key.index - len(container)))
                container.append(value)
        else:
            raise self._mismatch(key)

    def delete(self, data: Any) -> Any:
        """Remove the value at this path if present (`-1` removes an array's last item)."""
        current = data
        for key in self._keys[:-1]:
            if isinstance(current, dict):
                current = current.get(key.name)
            elif isinstance(current, list) and key.index is not None:
                current = current[key.index] if key.index < len(current) else None
            elif isinstance(current, list) and key.append:
                current = current[-1] if current else None
            else:
                return data
        key = self._keys[-1]
        if isinstance(current, dict):
            current.pop(key.name, None)
        elif isinstance(current, list):
            if key.index is not None and key.index < len(current):
                del current[key.index]
            elif key.append and current:
                current.pop()
        return data

    def __repr__(self) -> str:
        return f"DestPath({self.text!r})"


def _parse_dest(text: str) -> DestPath:
    def error(message: str, position: int) -> errors.ExpressionError:
        return errors.ExpressionError(message, text=text, position=position)

    if not text:
        raise error("empty path", 0)
    keys: list[_DestKey] = []
    pos, end = 0, len(text)
    while True:
        start = pos
        forced = pos < end and text[pos] == ":"
        if forced:
            pos += 1
        chars: list[str] = []
        while pos < end and text[pos] != ".":
            ch = text[pos]
            if ch == "\\":
                if pos + 1 >= end:
                    raise error("dangling escape at end of path", pos)
                chars.append(text[pos + 1])
                pos += 2
                continue
            if ch in "*?":
                raise error("wildcards are not allowed in a destination path", pos)
            if (
                ch == "#"
                and not chars
                and not forced
                and text[pos + 1 : pos + 2] in ("", ".", "(", "[")
            ):
                raise error("array queries are not allowed in a destination path", pos)
            chars.append(ch)
            pos += 1
        if not chars:
            raise error("expected a key", pos)
        keys.append(_DestKey("".join(chars), forced=forced, position=start))
        if pos >= end:
            return DestPath(text, keys)
        pos += 1  # the dot


@functools.lru_cache(maxsize=4096)
def compile_dest(path: str) -> DestPath:
    """Parse an sjson path once: dotted keys, `\\` escapes, `-1` appends, `:1` forces a key."""
    return _parse_dest(path)


def set_value(data: Any, path: str, value: Any) -> Any:
    """sjson Set: mutates `data` in place and returns the root (new only if `data` is not a
    dict or list). Missing intermediates are created: a list when the next key is an index or
    `-1`, otherwise a dict; an index past the end pads with None."""
    return compile_dest(path).set(data, value)


def delete(data: Any, path: str) -> Any:
    """sjson Delete: removes the value at `path` in place if present; returns `data`."""
    return compile_dest(path).delete(data)
