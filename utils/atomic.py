"""Results files written atomically and as strict JSON (issue 19, points 2 and 4; issue 29, property 1).

Every results file goes through :func:`write_text_atomic` (a temporary file in the same directory, flushed,
then ``os.replace``d over the target), so a reader sees the old file or the whole new one, even if the writer
is killed.  JSON has no NaN or Infinity: :func:`strict_json` replaces every non-finite number by ``null`` and
records why beside it, as ``"<key>_reason": "NaN"`` (for a list, the indices: ``"lambda_reason": "[1]: NaN"``).
:func:`check_new` refuses, before any work, an output that holds a file already (unless ``--force``) or that
names one of the command's inputs.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from numbers import Real
from pathlib import Path
from typing import Any, Iterable

__all__ = ["check_new", "check_writable", "strict_json", "write_json", "write_text_atomic"]


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see the module docstring); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def check_writable(path: Path | str, option: str, folder: bool = False) -> None:
    """One-line ``ValueError`` unless ``path`` can be written: a file (or with ``folder``, a folder) whose nearest
    existing ancestor is a writable folder.  Run before any work, so a long run cannot fail at its last write."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        kinds = ("folder", "file") if folder else ("file", "folder")
        raise ValueError(f"{option} {path} is a {kinds[1]}; give a {kinds[0]} path")
    ancestor = path if folder else path.parent  # the folder written into, or the nearest one that exists
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path} cannot be written ({ancestor} is not a writable folder)")


def check_new(outputs: Iterable[Path | str], force: bool, option: str = "--out",
              inputs: Iterable[Path | str] = ()) -> None:
    """One-line ``ValueError`` unless every path of ``outputs`` may be written by this call: none is one of
    ``inputs`` (refused even with ``force``), and none holds a file already unless ``force``.  Not a regular
    file (``/dev/null``, a missing path) is fine.  Run before any work."""
    sources = {Path(path).resolve() for path in inputs}
    for path in map(Path, outputs):
        if path.resolve() in sources:
            raise ValueError(f"{option} {path} is also an input of this command: give another path")
        if path.is_file() and not force:
            raise ValueError(f"{option}: {path} exists (written before this command); give --force to replace it, "
                             "or another path")


def _clean(value: Any) -> tuple[Any, str | None]:
    """``(value with non-finite numbers replaced by None, why)``: why a scalar or list entries were replaced."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value, None
    if isinstance(value, Real):  # float, numpy floats
        number = float(value)
        if math.isfinite(number):
            return number, None
        return None, "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            cleaned[key], why = _clean(item)
            if why is not None and f"{key}_reason" not in value:
                cleaned[f"{key}_reason"] = why
        return cleaned, None
    if isinstance(value, (list, tuple)):
        pairs = [_clean(item) for item in value]
        reasons = [f"[{index}]: {why}" for index, (_, why) in enumerate(pairs) if why is not None]
        return [item for item, _ in pairs], ("; ".join(reasons) or None)
    return _clean(value.tolist()) if hasattr(value, "tolist") else (value, None)  # tolist: tensors, numpy arrays


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite number replaced by ``None`` and a ``<key>_reason`` entry beside it."""
    cleaned, why = _clean(obj)  # why: of a bare non-finite number or a top-level list, nowhere else to put it
    return cleaned if why is None else {"value": cleaned, "value_reason": why}


def write_json(path: Path | str, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (:func:`strict_json`, indented) atomically to ``path``; returns ``path``."""
    return write_text_atomic(path, json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n")
