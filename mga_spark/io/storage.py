"""Storage errors told apart: permanent ones fail at once with their cause, transient ones are
retried with exponential backoff and jitter and then named as what they are.

Permanent: the path is wrong or forbidden, or the request itself is, and asking again cannot
help: PermissionError (s3fs: AccessDenied, 403, bad signature), FileNotFoundError (NoSuchBucket,
NoSuchKey, 404), IsADirectoryError, NotADirectoryError, and OSErrors whose errno says the same
(read-only filesystem, no space left, name too long, and EINVAL, EMSGSIZE, ENOSYS, EREMCHG: s3fs's
codes for a request the store refuses, such as InvalidArgument, MalformedXML, InvalidRequest,
EntityTooLarge, NotImplemented, PermanentRedirect). The S3 codes among those that a retry can
cure (IncompleteBody, BadDigest: the body was cut or damaged in transit; TokenRefreshRequired)
are transient, told by the S3 code that s3fs keeps as the error's cause (`s3_code`).
Transient: timeouts, connection errors, throttling and server errors (s3fs maps SlowDown and 503
to EBUSY, 500 to EREMOTEIO), and the network errors of botocore/aiohttp that s3fs re-raises
untranslated after its own retries. Any other OSError is storage trouble of an unknown kind,
retried like a transient one.

Retry budget on S3: botocore retries each HTTP request (its `retries.max_attempts`: 5 in its
default legacy mode for S3), s3fs retries each call (`S3FileSystem.retries`, default 5, for
SlowDown and connection errors), and `retry` here makes `attempts` tries of the whole write.
The budgets multiply: the README states the total.
"""

from __future__ import annotations

import errno
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKOFF_START = 0.5  # seconds: the first wait's ceiling; doubles after each failure
BACKOFF_MAX = 30.0
PERMANENT_TYPES: tuple[type[OSError], ...] = (PermissionError, FileNotFoundError,
                                              IsADirectoryError, NotADirectoryError)
PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.EISDIR, errno.ENOTDIR,
                    errno.EROFS, errno.ENOSPC, errno.ENAMETOOLONG, errno.EDQUOT, errno.EINVAL,
                    errno.EMSGSIZE, errno.ENOSYS, errno.EREMCHG}
# S3 error codes that s3fs maps to a permanent errno (EINVAL) although asking again can succeed.
TRANSIENT_S3_CODES = {"IncompleteBody", "BadDigest", "TokenRefreshRequired"}
TRANSIENT_ERRNOS = {errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED,
                    errno.EPIPE, errno.EAGAIN, errno.EBUSY, errno.EREMOTEIO, errno.ENETUNREACH,
                    errno.EHOSTUNREACH, errno.EIO}
# Network errors s3fs re-raises as they are (not OSError): matched by class name, so that
# neither botocore nor aiohttp has to be importable here.
TRANSIENT_NAMES = {"HTTPClientError", "EndpointConnectionError", "ConnectionClosedError",
                   "ReadTimeoutError", "ConnectTimeoutError", "ProxyConnectionError",
                   "ClientPayloadError", "ClientConnectionError", "ServerDisconnectedError",
                   "ClientOSError", "IncompleteRead", "FSTimeoutError", "ResponseParserError"}


class StorageError(OSError):
    """Storage that kept failing for a transient reason; the message names the reason."""


def kind(error: BaseException) -> str | None:
    """"permanent", "transient", or None for an error that is not a storage error."""
    if isinstance(error, PERMANENT_TYPES):
        return "permanent"
    if isinstance(error, (TimeoutError, ConnectionError)):
        return "transient"
    if s3_code(error) in TRANSIENT_S3_CODES:
        return "transient"
    if isinstance(error, OSError):
        return "permanent" if error.errno in PERMANENT_ERRNOS else "transient"
    if any(cls.__name__ in TRANSIENT_NAMES for cls in type(error).__mro__):
        return "transient"
    return None


def s3_code(error: BaseException) -> str | None:
    """The S3 error code behind `error` ("PreconditionFailed", "InvalidArgument", ...): s3fs
    keeps botocore's ClientError, whose `response` holds it, as the cause of the OSError it
    raises. The HTTP status ("412") when the reply had no code; None for any other error."""
    seen: BaseException | None = error
    for _ in range(4):  # the error itself, and a few causes down (a wrapper's wrapper)
        if seen is None:
            return None
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            code = (response.get("Error") or {}).get("Code")
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            return str(code) if code else (str(status) if status else None)
        seen = seen.__cause__ or seen.__context__
    return None


def delay(attempt: int, start: float = BACKOFF_START) -> float:
    """The wait after failed attempt `attempt` (0-based): exponential from `start` with "equal
    jitter", half fixed and half random, so tasks throttled at once do not retry in step."""
    ceiling = min(BACKOFF_MAX, start * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def permanent(error: OSError, what: str) -> OSError:
    """`error` as its own type, its message naming what failed and that it is not retried."""
    try:
        named = type(error)(f"{what} failed, not retried (permanent: {describe(error)})")
    except TypeError:  # an OSError subclass with another constructor
        named = OSError(f"{what} failed, not retried (permanent: {describe(error)})")
    named.__cause__ = error
    return named


def retry(action: Callable[[], T], what: str, attempts: int,
          fatal: tuple[type[BaseException], ...] = (), start: float = BACKOFF_START) -> T:
    """`action()`, tried up to `attempts` times while it fails for a transient reason. A
    permanent error raises at once (same type, message naming `what`); `fatal` ones raise as
    they are; the last transient failure raises StorageError naming it and the count."""
    for attempt in range(max(1, attempts)):
        try:
            return action()
        except fatal:
            raise
        except Exception as e:
            found = kind(e)
            if found is None:
                raise
            if found == "permanent":
                assert isinstance(e, OSError)
                raise permanent(e, what) from e
            if attempt + 1 >= attempts:
                raise StorageError(f"{what}: storage kept failing (transient: {describe(e)}) "
                                   f"after {attempt + 1} attempts") from e
            wait = delay(attempt, start)
            log.warning("%s failed (transient: %s); retrying in %.1fs", what, describe(e), wait)
            _sleep(wait)
    raise AssertionError("unreachable")


def _sleep(seconds: float) -> None:
    """The backoff's wait. Tests replace this function, never `time.sleep` itself: that is
    every thread's (a Spark gateway, a moto server), which would spin and fill the list."""
    time.sleep(seconds)
