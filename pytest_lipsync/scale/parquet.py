"""``lipsync score --parquet OUT.parquet``: the results as a Parquet table, for the tools that curate datasets.

A curation step filters a million clips by confidence and offset; a columnar file is what its tools
(pyarrow, pandas, DuckDB, Spark, Ray Data) read fastest. One row per video, one column per field of a JSON
Lines result line (``stream``), in the same order and with the same values:

* ``path``, ``frames``, ``audio_frames``, ``duration``, ``damaged_frames``, ``sha256``: plain columns;
* ``metrics``, ``timings``: maps from name to number (a metric that was not finite is null, as in JSON);
* ``tracks``: a list of structs with the JSON track's fields (``boxes`` a struct, null in the cropped protocol);
* ``error``: null, or a struct of ``kind``, ``message`` and ``facts``; ``quality``: null or an object. Both
  hold free-form JSON (facts, the per-frame quality series), so ``facts`` and ``quality`` are JSON text.

The JSON Lines header (tool, settings, weights, device, shard, collected) is the file's key-value metadata
under ``pytest-lipsync``. Rows are written in row groups of :data:`ROWS_PER_GROUP` as results arrive, so
memory stays flat; the file is written beside its destination and renamed over it only when the run
completed: it holds every video of the run, or it is not there (resuming is the JSON Lines file's job).

pyarrow is an optional dependency (``pip install "pytest-lipsync[parquet]"``), imported only here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_lipsync.errors import ConfigError
from pytest_lipsync.results import publish, temporary_beside

INSTALL_HINT = 'pip install "pytest-lipsync[parquet]" (or pip install "pyarrow>=12")'
METADATA_KEY = b"pytest-lipsync"
# A few hundred results a group: a row group is the unit readers skip by, and what this writer holds in memory.
ROWS_PER_GROUP = 512


def import_pyarrow(what: str) -> Any:
    """The ``pyarrow`` module (with ``pyarrow.parquet`` imported), or a usage error saying how to install it."""
    try:
        import pyarrow  # type: ignore[import-not-found,import-untyped,unused-ignore]
        import pyarrow.parquet  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        raise ConfigError(f"{what} needs pyarrow, which is not installed", hint=INSTALL_HINT) from None
    return pyarrow


def schema(pa: Any) -> Any:
    """The columns: a JSON Lines result line's fields, typed (see the module docstring)."""
    number, whole, text = pa.float64(), pa.int64(), pa.string()
    boxes = pa.struct([("detections", whole), ("mean_width", number), ("mean_height", number)])
    track = pa.struct(
        [
            ("start_frame", whole),
            ("end_frame", whole),
            ("windows", whole),
            ("lse_d", number),
            ("lse_c", number),
            ("offset", whole),
            ("mean_dist", pa.list_(number)),
            ("frame_confidence", pa.list_(number)),
            ("boxes", boxes),
        ]
    )
    return pa.schema(
        [
            ("path", text),
            ("metrics", pa.map_(text, number)),
            ("frames", whole),
            ("audio_frames", whole),
            ("duration", number),
            ("tracks", pa.list_(track)),
            ("timings", pa.map_(text, number)),
            ("error", pa.struct([("kind", text), ("message", text), ("facts", text)])),
            ("quality", text),
            ("damaged_frames", whole),
            ("sha256", text),
        ]
    )


def row(line: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Lines result line (as data) as a row: the same values, free-form objects as JSON text."""
    data = dict(line)
    error = data["error"]
    if error is not None:
        data["error"] = {**error, "facts": json.dumps(error["facts"], allow_nan=False)}
    if data["quality"] is not None:
        data["quality"] = json.dumps(data["quality"], allow_nan=False)
    return data


class ParquetWriter:
    """Rows in row groups as results arrive, into a temporary file published by ``close(complete=True)``."""

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        """``header``: the JSON Lines header (as data), kept as the file's metadata."""
        pa = import_pyarrow("--parquet")
        self._pa = pa
        self.path = path
        self.schema = schema(pa).with_metadata({METADATA_KEY: json.dumps(header, allow_nan=False)})
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, self._temporary = temporary_beside(path, ".tmp")
        os.close(handle)
        try:
            self._writer = pa.parquet.ParquetWriter(str(self._temporary), self.schema)
        except BaseException:
            self._temporary.unlink(missing_ok=True)
            raise
        self._rows: list[dict[str, Any]] = []

    def write(self, line: Mapping[str, Any]) -> None:
        self._rows.append(row(line))
        if len(self._rows) >= ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(self._pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows.clear()

    def close(self, complete: bool) -> None:
        """Publish the file when the run ``complete``d; else remove it (a part of a run is no result)."""
        try:
            if complete:
                self._flush()
            self._writer.close()
            if complete:
                with open(self._temporary, "rb") as stream:
                    os.fsync(stream.fileno())
                publish(self._temporary, self.path)
        finally:
            self._temporary.unlink(missing_ok=True)
