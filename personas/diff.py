"""What changed between two persona versions: a list of field changes, readable by a
person (``traits.patience.value: 0.9 -> 0.85``) and by a program."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ChangeKind = Literal["added", "removed", "changed"]

# lists whose items have a name: compared by it, not by position
_KEYED = {"traits": "name", "channels": "name", "modes": "mode"}


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str
    kind: ChangeKind
    old: Any = None
    new: Any = None

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "old": self.old, "new": self.new}

    def __str__(self) -> str:
        if self.kind == "added":
            return f"+ {self.path}: {_short(self.new)}"
        if self.kind == "removed":
            return f"- {self.path}: {_short(self.old)}"
        return f"~ {self.path}: {_short(self.old)} -> {_short(self.new)}"


def diff_snapshots(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """The changes from snapshot ``old`` to snapshot ``new``, in field order."""
    changes: list[FieldChange] = []
    _diff(old, new, "", changes)
    return changes


def _diff(old: Any, new: Any, path: str, out: list[FieldChange]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in list(dict.fromkeys([*old, *new])):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                if new[key] not in (None, [], {}, ""):
                    out.append(FieldChange(sub, "added", new=new[key]))
            elif key not in new:
                if old[key] not in (None, [], {}, ""):
                    out.append(FieldChange(sub, "removed", old=old[key]))
            else:
                _diff(old[key], new[key], sub, out)
        return
    field = path.rsplit(".", 1)[-1]
    if isinstance(old, list) and isinstance(new, list) and field in _KEYED:
        _diff_keyed(old, new, path, _KEYED[field], out)
        return
    if isinstance(old, list) and isinstance(new, list) and old != new:
        _diff_list(old, new, path, out)
        return
    if old != new:
        out.append(FieldChange(path, "changed", old, new))


def _diff_keyed(
    old: Sequence[Any], new: Sequence[Any], path: str, key: str, out: list[FieldChange]
) -> None:
    before = {item.get(key): item for item in old if isinstance(item, Mapping)}
    after = {item.get(key): item for item in new if isinstance(item, Mapping)}
    for name in dict.fromkeys([*before, *after]):
        sub = f"{path}.{name}"
        if name not in before:
            out.append(FieldChange(sub, "added", new=after[name]))
        elif name not in after:
            out.append(FieldChange(sub, "removed", old=before[name]))
        else:
            _diff(before[name], after[name], sub, out)


def _diff_list(old: Sequence[Any], new: Sequence[Any], path: str, out: list[FieldChange]) -> None:
    # beliefs and domains: an item kept is no change unless the order of the kept ones moved
    for item in old:
        if item not in new:
            out.append(FieldChange(path, "removed", old=item))
    for item in new:
        if item not in old:
            out.append(FieldChange(path, "added", new=item))
    if [i for i in old if i in new] != [i for i in new if i in old]:
        out.append(FieldChange(path, "changed", "order", "reordered"))


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
