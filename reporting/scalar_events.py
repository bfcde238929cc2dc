"""TensorBoard event files reduced to their scalars and packed into one small ``tar.gz`` (for a commit).

:func:`pack_scalars` reads every ``events.out.tfevents*`` file under a folder, keeps the scalar summaries (the
training curves; images, histograms, hyperparameters and text are dropped) and writes them as event files again,
under the same relative paths, into one ``tar.gz`` that ``tensorboard --logdir`` reads once unpacked.  If the
archive is over the size cap, every tag keeps only every 2nd, 4th, ... point (its last point always) until it fits.
"""

from __future__ import annotations

import io
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.summary.writer.record_writer import RecordWriter

__all__ = ["pack_scalars", "scalar_events"]

PATTERN = "events.out.tfevents*"


def _is_scalar(value: Any) -> bool:
    kind = value.WhichOneof("value")
    return kind == "simple_value" or (kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars")


def scalar_events(path: Path) -> list[Event]:
    """The events of one event file that a scalar reader needs: the file version and the scalar summaries only."""
    kept = []
    for event in EventFileLoader(str(path)).Load():
        if event.HasField("summary"):
            values = [value for value in event.summary.value if _is_scalar(value)]
            if values:
                reduced = Event(wall_time=event.wall_time, step=event.step)
                reduced.summary.value.extend(values)
                kept.append(reduced)
        elif event.HasField("file_version"):
            kept.append(event)
    return kept


def _thinned(events: list[Event], stride: int) -> bytes:
    """The events as one event file, each tag keeping every ``stride``-th point and its last."""
    totals = Counter(value.tag for event in events for value in event.summary.value)
    seen: Counter = Counter()
    stream = io.BytesIO()
    writer = RecordWriter(stream)
    for event in events:
        if not event.HasField("summary"):
            writer.write(event.SerializeToString())
            continue
        values = []
        for value in event.summary.value:
            seen[value.tag] += 1  # the value's index + 1
            if (seen[value.tag] - 1) % stride == 0 or seen[value.tag] == totals[value.tag]:
                values.append(value)
        if values:
            reduced = Event(wall_time=event.wall_time, step=event.step)
            reduced.summary.value.extend(values)
            writer.write(reduced.SerializeToString())
    return stream.getvalue()


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pack_scalars(folder: Path, archive: Path, cap_bytes: int) -> dict[str, Any] | None:
    """Pack the scalars of every event file under ``folder`` into ``archive`` (at most ``cap_bytes``, see the
    module docstring); returns ``{"files", "points", "stride", "bytes"}``, or ``None`` when there is no event file."""
    sources = sorted(p for p in Path(folder).rglob(PATTERN) if p.is_file())
    if not sources:
        return None
    events = {p.relative_to(folder).as_posix(): scalar_events(p) for p in sources}
    stride, most = 1, max(len(found) for found in events.values())
    while True:
        data = _archive({name: _thinned(found, stride) for name, found in events.items()})
        if len(data) <= cap_bytes or stride >= most:
            break
        stride *= 2
    if len(data) > cap_bytes:
        raise ValueError(f"the scalars of {folder} take {len(data)} bytes even at one point per tag, over {cap_bytes}")
    archive.write_bytes(data)
    points = sum(len(event.summary.value) for found in events.values() for event in found)
    return {"files": list(events), "points": points, "stride": stride, "bytes": len(data)}
