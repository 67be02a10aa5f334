"""The one redaction of secrets, for everything the project logs or writes: `_run.json`, the engine
arguments logged on every executor, the bench results.

Three kinds of secret are found:
- values under a secret key name, in any case style: `hf_token`, `aws_secret_access_key`,
  `secretKey`, `sessionToken`, `apiKey`, `Authorization`, `connection_string`, `passphrase`,
  `pwd`, `spark.hadoop.fs.s3a.secret.key` (but not `max_tokens` or `tokenizer`);
- credentials inside URIs, in any string: the user info of `scheme://user:password@host/...` and
  the values of secret query parameters (`X-Amz-Signature`, `X-Amz-Credential`,
  `X-Amz-Security-Token`, `sig`, `token`, ...), as presigned URLs carry them;
- the value of a `KEY=VALUE` setting with a secret KEY (`redact_setting`: `--set` overrides and
  command-line words, as the bench records them).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# A key is secret when one of its words (split at case changes, digits and . _ - or spaces) is one
# of these, or when two adjacent words make one of the pairs.
SECRET_WORDS = frozenset({
    "secret", "secrets", "password", "passwd", "pwd", "passphrase", "token", "credential",
    "credentials", "key", "apikey", "authorization", "auth", "cookie", "signature", "sig",
    "bearer", "dsn", "sas",
})
SECRET_PAIRS = frozenset({("connection", "string"), ("private", "key"), ("access", "key")})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/?#@\s]+)@")
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#;\s]+)=(?P<value>[^&#;\s]*)")


def key_words(key: str) -> list[str]:
    """`aws_secret_access_key` -> [aws, secret, access, key]; `sessionToken` -> [session, token];
    `X-Amz-Signature` -> [x, amz, signature]."""
    return [w.lower() for w in _WORDS.findall(key)]


def is_secret_key(key: str) -> bool:
    words = key_words(key)
    if any(w in SECRET_WORDS for w in words):
        return True
    return any(pair in SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


def redact_text(text: str) -> str:
    """The string with credentials in URIs masked: user info and secret query parameters."""
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    if "=" in text:
        text = _QUERY_PARAM.sub(
            lambda m: f"{m['lead']}{m['name']}={MASK}" if is_secret_key(m["name"]) and m["value"]
            else m[0], text)
    return text


def redact_setting(text: str) -> str:
    """A `KEY=VALUE` word (a `--set` override, a `--hf-token=...` argument) with the value masked
    when KEY is a secret key name (`model.engine_args.api_key=...`); otherwise `redact_text`."""
    key, sep, value = text.partition("=")
    if sep and value and is_secret_key(key):
        return f"{key}={MASK}"
    return redact_text(text)


def redact(obj: Any) -> Any:
    """A copy of `obj` (dicts, lists, strings, scalars) with every secret masked."""
    if isinstance(obj, dict):
        return {k: MASK if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
                else redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj
