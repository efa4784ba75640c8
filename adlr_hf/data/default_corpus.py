"""A text corpus that exists on any machine with Python: the docstrings of the standard library.

`build_default_corpus()` reads the *source files* of a fixed list of pure-Python stdlib modules and packages with `ast`
(nothing is imported, so no module's import-time side effects run), takes `ast.get_docstring` of every module, class and
function in source order, and writes them to one UTF-8 text file, one docstring per paragraph (paragraphs are separated by
one empty line; blank lines *inside* a docstring are removed so that each docstring stays one paragraph). Load it with
`adlr_hf.data.text.load_text_dataset(path)` (its default `sample_by="paragraph"` gives one document per docstring).

The bytes depend only on the stdlib sources, i.e. on the Python version: the file name carries the version, and two
builds with the same interpreter give identical bytes. On CPython 3.11 it is about 1.2 MB and ~5,300 documents (exact
duplicates, e.g. repeated one-line docstrings of overridden methods, are kept once).
"""

from __future__ import annotations

import ast
import hashlib
import os
import platform
import sys
import sysconfig
import tokenize
import uuid
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DEFAULT_MODULES", "build_default_corpus", "collect_docstrings", "default_cache_dir"]

# Bump when the output format changes, so old cached files are not reused.
_FORMAT_VERSION = 1

# Pure-Python modules and packages of the standard library, in the order they are written. A name missing from this
# interpreter's stdlib (modules do get removed between versions) is skipped. Folders named test/tests are skipped.
DEFAULT_MODULES: tuple[str, ...] = (
    "abc", "argparse", "ast", "asyncio", "base64", "bdb", "bisect", "calendar", "cmd", "code", "codecs", "collections",
    "colorsys", "concurrent", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "_pydecimal",
    "difflib", "dis", "doctest", "email", "enum", "filecmp", "fnmatch", "fractions", "ftplib", "functools", "getopt",
    "gettext", "glob", "gzip", "heapq", "hmac", "html", "http", "imaplib", "importlib", "inspect", "ipaddress", "json",
    "keyword", "linecache", "locale", "logging", "lzma", "mailbox", "mimetypes", "multiprocessing", "numbers",
    "operator", "optparse", "os", "pathlib", "pdb", "pickle", "pickletools", "pkgutil", "platform", "plistlib",
    "poplib", "posixpath", "pprint", "profile", "pstats", "pydoc", "queue", "quopri", "random", "re", "reprlib",
    "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "signal", "smtplib", "socket", "socketserver",
    "sqlite3", "ssl", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit",
    "tokenize", "trace", "traceback", "turtle", "typing", "unittest", "urllib", "uuid", "warnings", "wave", "weakref",
    "xml", "zipfile", "zipimport",
)

_SKIP_DIRS = {"test", "tests", "__pycache__"}
_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def default_cache_dir() -> Path:
    """`$ADLR_HF_CACHE`, else `$XDG_CACHE_HOME/adlr_hf`, else `~/.cache/adlr_hf`."""
    if os.environ.get("ADLR_HF_CACHE"):
        return Path(os.environ["ADLR_HF_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "adlr_hf"


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _source_files(stdlib: Path, name: str) -> list[Path]:
    """The .py files of stdlib module/package `name`, sorted by relative path; [] when this Python has no such module."""
    rel = Path(*name.split("."))
    package = stdlib / rel
    if package.is_dir() and (package / "__init__.py").is_file():
        files = [p for p in package.rglob("*.py") if not _SKIP_DIRS.intersection(p.relative_to(stdlib).parts)]
        return sorted(files, key=lambda p: p.relative_to(stdlib).as_posix())
    module = stdlib / rel.with_suffix(".py")
    return [module] if module.is_file() else []


def _clean(doc: str) -> str:
    """Drop blank lines inside a (already dedented) docstring so it is exactly one paragraph of the corpus file."""
    return "\n".join(line.rstrip() for line in doc.splitlines() if line.strip())


def _file_docstrings(path: Path) -> list[str]:
    with tokenize.open(path) as f:  # honours the file's encoding cookie
        tree = ast.parse(f.read(), filename=str(path))
    nodes = [n for n in ast.walk(tree) if isinstance(n, _DOC_NODES)]
    # ast.walk is breadth-first; sort into source order (the Module node has no position and comes first).
    nodes.sort(key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", -1)))
    docs = []
    for node in nodes:
        doc = ast.get_docstring(node, clean=True)
        if doc and doc.strip():
            docs.append(_clean(doc))
    return docs


def collect_docstrings(modules: Iterable[str] = DEFAULT_MODULES) -> list[str]:
    """Docstrings of `modules` (stdlib names), in module-list / file / source order, exact duplicates kept once."""
    stdlib = _stdlib_dir()
    seen: set[str] = set()
    docs: list[str] = []
    for name in modules:
        for path in _source_files(stdlib, name):
            for doc in _file_docstrings(path):
                if doc not in seen:
                    seen.add(doc)
                    docs.append(doc)
    return docs


def _corpus_name(modules: tuple[str, ...]) -> str:
    key = hashlib.sha256(repr((_FORMAT_VERSION, modules)).encode()).hexdigest()[:12]
    version = f"{sys.implementation.name}{platform.python_version()}"
    return f"stdlib-docstrings-{version}-{key}.txt"


def build_default_corpus(cache_dir: str | os.PathLike | None = None, *, modules: Iterable[str] = DEFAULT_MODULES,
                         overwrite: bool = False) -> Path:
    """Write the stdlib-docstring corpus under `cache_dir/default_corpus/` (default: `default_cache_dir()`) and return
    its path. An existing file of the same name (same Python version and module list) is reused unless `overwrite`.
    The file is written to a temporary name and renamed, so a crash never leaves a partial corpus behind.
    """
    modules = tuple(modules)
    if not modules:
        raise ValueError("modules is empty: pass at least one standard-library module name (default: DEFAULT_MODULES)")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = folder / "default_corpus"
    path = folder / _corpus_name(modules)
    if path.is_file() and not overwrite:
        return path
    docs = collect_docstrings(modules)
    if not docs:
        raise ValueError(f"no docstrings found for modules {list(modules)} in the standard library at {_stdlib_dir()}; "
                         "pass names of pure-Python stdlib modules (e.g. 'json', 'argparse')")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n\n".join(docs))
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
