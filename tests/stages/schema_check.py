"""Checking an instance against a stage's generated JSON schema, two ways: a small validator of
the keywords the schemas use (fast tier, no extra dependency), and xgrammar, the grammar
vLLM compiles the schema into for structured outputs (vllm tier: it ships with vLLM)."""

from __future__ import annotations

import json

# Every keyword the validator understands; a schema using any other one fails `accepts`, so a
# new keyword can never be silently ignored.
KEYWORDS = {"$defs", "$ref", "type", "title", "properties", "required", "additionalProperties",
            "items", "minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum"}


def accepts(schema: dict, instance: object) -> bool:
    return _valid(instance, schema, schema.get("$defs", {}))


def _valid(x: object, s: dict, defs: dict) -> bool:
    unknown = set(s) - KEYWORDS
    if unknown:
        raise AssertionError(f"schema keyword(s) the test validator does not know: {unknown}")
    if "$ref" in s:
        return _valid(x, defs[s["$ref"].removeprefix("#/$defs/")], defs)
    kind = s["type"]
    if kind == "object":
        if not isinstance(x, dict) or not set(s["required"]) <= set(x):
            return False
        if s.get("additionalProperties") is False and not set(x) <= set(s["properties"]):
            return False
        return all(_valid(x[k], sub, defs) for k, sub in s["properties"].items() if k in x)
    if kind == "array":
        return (isinstance(x, list) and s.get("minItems", 0) <= len(x) <= s.get("maxItems", 1e9)
                and all(_valid(v, s["items"], defs) for v in x))
    if kind == "string":
        return isinstance(x, str) and s.get("minLength", 0) <= len(x) <= s.get("maxLength", 1e9)
    if kind == "integer":
        return (isinstance(x, int) and not isinstance(x, bool)
                and s.get("minimum", -1e18) <= x <= s.get("maximum", 1e18))
    raise AssertionError(f"schema type the test validator does not know: {kind}")


def xgrammar_accepts(schema: dict, instance: object) -> bool:
    """Whether the grammar vLLM builds from `schema` lets a model write `instance`."""
    import xgrammar
    from xgrammar.testing import _is_grammar_accept_string

    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema))
    return _is_grammar_accept_string(grammar, json.dumps(instance, ensure_ascii=False))
