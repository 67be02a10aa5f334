"""Where a run's logs go. Quiet by default: the terminal shows the plan, the progress, the summary,
warnings of this package and every error; everything else (this package's INFO lines, vLLM,
Spark, the Python workers, warnings of libraries) goes to a log file, named at the start.

`setup_logging(None)` (`-v`) puts everything on the terminal instead, as a plain run always did.
A log line meant for the quiet terminal too is logged with `extra=TERMINAL`.

The Spark JVM and the Python workers it starts write to the process's file descriptors 1 and 2,
not through Python logging: `process_output_to` points those descriptors at the log file while
the JVM starts (it keeps them for its lifetime), then gives the terminal back to this process.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from fsspec.utils import get_protocol

from mga_spark.layout import LOG_DIR

TERMINAL = {"terminal": True}
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("py4j", "urllib3", "botocore", "s3fs", "fsspec")
PACKAGE = "mga_spark"


class _Stderr(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record comes (a live progress bar replaces it with
    a proxy that prints above the bar)."""

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class _LazyFile(logging.FileHandler):
    """A file handler that creates the file (and its directory) at its first record, so a run
    that stops before logging anything leaves nothing behind."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)

    def _open(self) -> TextIO:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def _on_quiet_terminal(record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR or getattr(record, "terminal", False):
        return True
    return record.levelno >= logging.WARNING and record.name.startswith(PACKAGE)


class _TerminalFormat(logging.Formatter):
    """The message alone for the lines a user reads; level and logger for warnings and errors."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname} {record.name}: {text}"
        return text


def setup_logging(log_file: Path | None = None) -> None:
    """Log INFO and above: to the terminal (stderr) when `log_file` is None, else to `log_file`
    with only the quiet terminal's lines on stderr. Calling it again replaces what it set up."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, PACKAGE, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.INFO)
    terminal = _Stderr()
    handlers: list[logging.Handler] = [terminal]
    if log_file is None:
        terminal.setFormatter(logging.Formatter(FORMAT))
    else:
        terminal.addFilter(_on_quiet_terminal)
        terminal.setFormatter(_TerminalFormat())
        to_file = _LazyFile(log_file)
        to_file.setFormatter(logging.Formatter(FORMAT))
        handlers.append(to_file)
    logging.captureWarnings(log_file is not None)  # FutureWarnings & co. into the log file
    for handler in handlers:
        setattr(handler, PACKAGE, True)
        root.addHandler(handler)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # vLLM, once imported, logs through a handler of its own and does not propagate: route it
    # through the handlers above like every other library (quiet: into the file).
    engine_log = logging.getLogger("vllm")
    for handler in list(engine_log.handlers):
        engine_log.removeHandler(handler)
    engine_log.propagate = True


def log_file_for(output: str) -> Path:
    """A new log file for a run into `output`: OUTPUT/_logs/run-<time>-<pid>.log for a local
    output, the same name in the temporary directory's mga-spark-logs/ otherwise."""
    name = f"run-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    if get_protocol(output) == "file":
        local = output.removeprefix("file://")
        return Path(os.path.abspath(local)) / LOG_DIR / name
    return Path(tempfile.gettempdir()) / "mga-spark-logs" / name


@contextmanager
def process_output_to(log_file: Path | None) -> Iterator[None]:
    """Inside, this process's stdout and stderr descriptors write to `log_file` (appending), and
    so do the child processes started meanwhile, for their lifetime. None: no change."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    target = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)
