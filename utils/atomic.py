"""Results files written atomically and as strict JSON (issue 19, points 2 and 4).

Every results file (``metrics.json``, ``evaluation.json``, ``audit.json``, the reproduction and sweep
tables, benchmark outputs) goes through :func:`write_text_atomic`: the text is written to a temporary
file in the same directory, flushed to disk, then renamed over the target (``os.replace``), so a reader
sees either the old file or the whole new one, never a partial one, even if the writer is killed.

JSON has no NaN or Infinity (Python's ``json`` writes them, strict parsers reject them):
:func:`strict_json` replaces every non-finite number by ``null`` and records why beside it, as
``"<key>_reason": "NaN"`` (or ``"Infinity"``, ``"-Infinity"``; for a list, the indices:
``"lambda_reason": "[1]: NaN"``).  :func:`write_json` writes the result atomically.

No command replaces a file it did not create in the same call unless ``--force`` is given (issue 29,
property 1): :func:`check_new` refuses, before any work, an output path that holds a file already (an
earlier evaluation, table or summary) or that names one of the command's inputs (even with ``--force``).
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
    """Write ``text`` to ``path`` through a temporary file in the same directory and ``os.replace``; returns ``path``."""
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
        raise ValueError(f"{option} {path} is a {'file' if folder else 'folder'}; give a {'folder' if folder else 'file'} path")
    ancestor = path if folder else path.parent  # the folder written into, or the nearest one that exists
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path} cannot be written ({ancestor} is not a writable folder)")


def check_new(outputs: Iterable[Path | str], force: bool, option: str = "--out", inputs: Iterable[Path | str] = ()) -> None:
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


def _reason(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _clean(value: Any) -> tuple[Any, str | None]:
    """``(value with non-finite numbers replaced by None, why)``: ``why`` describes a replaced scalar or list entries."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value, None
    if isinstance(value, Real):  # float, numpy floats
        number = float(value)
        return (number, None) if math.isfinite(number) else (None, _reason(number))
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            cleaned[key], why = _clean(item)
            if why is not None and f"{key}_reason" not in value:
                cleaned[f"{key}_reason"] = why
        return cleaned, None
    if isinstance(value, (list, tuple)):
        items, reasons = [], []
        for index, item in enumerate(value):
            cleaned_item, why = _clean(item)
            items.append(cleaned_item)
            if why is not None:
                reasons.append(f"[{index}]: {why}")
        return items, ("; ".join(reasons) or None)
    if hasattr(value, "tolist"):  # tensors, numpy arrays
        return _clean(value.tolist())
    return value, None


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite number replaced by ``None`` and a ``<key>_reason`` entry beside it."""
    cleaned, why = _clean(obj)
    if why is not None:  # a bare non-finite number or a top-level list: nowhere to put the reason
        return {"value": cleaned, "value_reason": why}
    return cleaned


def write_json(path: Path | str, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (:func:`strict_json`, indented) atomically to ``path``; returns ``path``."""
    return write_text_atomic(path, json.dumps(strict_json(obj), indent=2, allow_nan=False) + "\n")
