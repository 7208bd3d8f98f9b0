"""Local-file helpers shared by the file sources: source URL → ``Path``, file kinds, safe reads.

Accepted URL forms (any of the local schemes ``maildir``, ``mbox``, ``eml``, ``ics``, ``vcf``)::

    maildir:///abs/path          → /abs/path          (also maildir://localhost/abs/path)
    maildir:relative/dir         → ./relative/dir     (relative to the current directory)
    maildir://./relative         → ./relative
    maildir:~/Mail, maildir://~/Mail → home directory expansion

The path is percent-decoded; ``?`` and ``#`` are part of the path (local sources take no options).
Relative paths are made absolute once, when the connector is built, so a later ``chdir`` does not move them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple
from urllib.parse import unquote

from sync_service.connectors.base import ItemKind
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError

PathType = Literal["file", "dir", "any"]
AnyPath = str | os.PathLike[str]

_KIND_BY_SUFFIX: dict[str, ItemKind] = {".eml": "message", ".ics": "calendar", ".vcf": "contacts"}


class FileEntry(NamedTuple):
    """One file seen while scanning a source directory."""

    path: str  # plain strings: building 20,000 Path objects would dominate a scan
    kind: ItemKind
    version: str
    mtime_ns: int


def url_to_path(url: str) -> Path:
    """The local path named by a file-source URL (see the module docstring). Raises ``ConfigError``."""
    scheme, sep, rest = url.partition(":")
    if not sep or not scheme:
        raise ConfigError(f"not a source URL: {url!r}")
    if rest.startswith("//"):
        host, slash, path = rest[2:].partition("/")
        host = unquote(host)
        if host in ("", "localhost"):
            rest = slash + path
        elif host in (".", "..") or host.startswith("~"):
            rest = host + slash + path
        else:
            raise ConfigError(f"{scheme}: sources are local; remote host {host!r} is not supported")
    raw = unquote(rest)
    if not raw:
        raise ConfigError(f"{scheme}: URL names no path")
    return Path(raw).expanduser().absolute()


def require_path(path: Path, want: PathType) -> Path:
    """``path`` if it exists and has the wanted type, else a clear ``PermanentSourceError``."""
    if not path.exists():
        raise PermanentSourceError(f"source path does not exist: {path}")
    if want == "dir" and not path.is_dir():
        raise PermanentSourceError(f"source path is not a directory: {path}")
    if want == "file" and not path.is_file():
        raise PermanentSourceError(f"source path is not a regular file: {path}")
    return path


@contextmanager
def source_errors(path: AnyPath) -> Iterator[None]:
    """Map OS errors while reading a source: missing / forbidden → permanent, anything else → transient."""
    try:
        yield
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        raise PermanentSourceError(f"cannot read source {path}: {exc.strerror or exc}") from exc
    except OSError as exc:
        raise TransientSourceError(f"I/O error on source {path}: {exc.strerror or exc}") from exc


def kind_for(name: str) -> ItemKind | None:
    """The item kind of a file by its suffix (``.eml`` / ``.ics`` / ``.vcf``, any case), else ``None``."""
    return _KIND_BY_SUFFIX.get(os.path.splitext(name)[1].lower())


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def text_id(name: str) -> str:
    """A file name as an external id the database can store: a name that is not UTF-8 (which reaches Python
    with lone surrogates) gets its undecodable bytes as ``\\xNN`` escapes. The path itself stays as listed."""
    if name.isascii():
        return name
    try:
        name.encode()
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def entry_stat(entry: os.DirEntry[str]) -> os.stat_result | None:
    """The stat of a visible regular file; ``None`` for anything else and for a file gone meanwhile."""
    if is_hidden(entry.name):
        return None
    try:
        return entry.stat() if entry.is_file() else None
    except FileNotFoundError:  # renamed or removed while scanning: the next listing sees the truth
        return None


def stat_entry(path: str, kind: ItemKind, st: os.stat_result, version: str | None = None) -> FileEntry:
    """A ``FileEntry``; the default version is ``mtime_ns:size``."""
    return FileEntry(path, kind, version if version is not None else f"{st.st_mtime_ns}:{st.st_size}",
                     st.st_mtime_ns)


def suffix_files(root: Path, kind: ItemKind) -> dict[str, FileEntry]:
    """``root`` itself when it is a file, else the non-hidden files of that kind directly inside it."""
    with source_errors(root):
        if root.is_file():
            return {root.name: stat_entry(str(root), kind, root.stat())}
        found: dict[str, FileEntry] = {}
        with os.scandir(root) as entries:
            for entry in entries:
                st = entry_stat(entry) if kind_for(entry.name) == kind else None
                if st is not None:
                    found[entry.name] = stat_entry(entry.path, kind, st)
        return found


def safe_join(root: Path, relative: str) -> Path | None:
    """``root / relative`` for a relative POSIX path that stays inside ``root``; ``None`` otherwise."""
    rel = PurePosixPath(relative)
    if not relative or rel.is_absolute() or ".." in rel.parts or "\x00" in relative:
        return None
    return root.joinpath(*rel.parts)


def read_bytes(path: AnyPath) -> bytes | None:
    """The file's bytes, or ``None`` when it vanished (or became a directory) since it was listed."""
    with source_errors(path):
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
