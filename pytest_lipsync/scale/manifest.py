"""``lipsync score --manifest FILE``: the videos of a dataset named in a file rather than on the command line.

A curated dataset is a list (a million paths do not fit on a command line, and a folder holds more than
the list keeps). Three forms, chosen by the file's suffix:

* ``.csv``: a header row with a ``path`` column (other columns are ignored: a curation table can be
  passed as it is);
* ``.parquet``: a ``path`` column, read with pyarrow (``pip install "pytest-lipsync[parquet]"``);
* anything else: plain text, one path per line; blank lines and lines starting with ``#`` are skipped.

Each entry is what the command line takes (a file, a folder or a glob). A relative path is relative to the
manifest's folder, so a manifest written next to its dataset works from any working directory.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pytest_lipsync.errors import ConfigError

_HINT = "Write one path per line, or a CSV (or Parquet) file with a 'path' column"


def read_manifest(manifest: Path) -> list[Path]:
    """The paths the manifest names, relative ones made relative to its folder."""
    try:
        if manifest.suffix.lower() == ".csv":
            raw = _csv_paths(manifest)
        elif manifest.suffix.lower() == ".parquet":
            raw = _parquet_paths(manifest)
        else:
            text = manifest.read_text(encoding="utf-8")
            raw = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    except OSError as exc:
        raise ConfigError(f"cannot be read ({exc.strerror})", path=manifest, hint=_HINT) from None
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", path=manifest, hint=_HINT) from None
    if not raw:
        raise ConfigError("names no videos", path=manifest, hint=_HINT)
    return [manifest.parent / Path(entry).expanduser() for entry in raw]


def _csv_paths(manifest: Path) -> list[str]:
    with open(manifest, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise ConfigError(f"has no 'path' column (columns: {reader.fieldnames or []})", path=manifest, hint=_HINT)
        return [row["path"].strip() for row in reader if (row.get("path") or "").strip()]


def _parquet_paths(manifest: Path) -> list[str]:
    from pytest_lipsync.scale.parquet import import_pyarrow

    try:
        pyarrow = import_pyarrow("reading a Parquet manifest")
    except ConfigError as exc:
        raise ConfigError(f"is a Parquet file: {exc.message}", path=manifest, hint=exc.hint) from None
    try:
        columns = pyarrow.parquet.read_schema(manifest).names
        paths = pyarrow.parquet.read_table(manifest, columns=["path"]) if "path" in columns else None
    except pyarrow.ArrowException as exc:
        raise ConfigError(f"is not a readable Parquet file ({exc})", path=manifest, hint=_HINT) from None
    if paths is None:
        raise ConfigError(f"has no 'path' column (columns: {columns})", path=manifest, hint=_HINT)
    return [
        str(value).strip() for value in paths.column("path").to_pylist() if value is not None and str(value).strip()
    ]
