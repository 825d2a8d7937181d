"""Answer anchors: values in a prompt's format instructions that a model can copy.

Weak models copy the example of a format instruction as their answer: with
``Answer with JSON only, like {"hours": 40}`` every SmolLM2 worker answered 40 hours
whatever the tax, every voter chose the label of the vote example, and the planner's
proposals began with the count in ``{"rates": [7 whole numbers]}``. Prompts should
describe the format in words and leave the values to the JSON schema.

:func:`find_anchors` scans a rendered prompt for

* **JSON-looking examples** (any ``{…}``): an example that validates against the
  call's schema, or holds a value one of its fields accepts (an hour count within the
  bounds, an existing ballot label, a rate), or — when it is pseudo-JSON such as
  ``{"rates": [7 whole numbers]}`` — any number or label that is a valid value;
* **bare numbers and labels in format instructions** (lines that mention JSON, the
  answer format, or give an example: "for example", "e.g.", "such as", "like"), after
  removing bounds (``from 0 to 80``, ``at most 80``, ``0-20``): the bounds of a range are
  fine as bounds, not as an example answer.

The scan is a pure function of the text and the schema; ``llmecon prompts check``
renders every template as the agents would and runs it
(:func:`llmecon.runs.prompt_examples.template_anchors`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

#: A line that is (part of) an instruction about the answer's format.
FORMAT_INSTRUCTION = re.compile(
    r"\bjson\b|\bformat\b|\b(?:answer|reply|respond)\s+(?:only\s+)?with\b|\bfor example\b"
    r"|\be\.g\.|\bsuch as\b|\blike\s*[{\[\"']|\bexample\b",
    re.IGNORECASE,
)
_NUM = r"\$?-?\d[\d,]*(?:\.\d+)?\s*%?"
#: Bounds and ranges: numbers here are limits, not example answers.
_BOUNDS = re.compile(
    rf"\b(?:from|between)\s+{_NUM}\s*(?:to|through|and|-|–)\s*{_NUM}"
    rf"|{_NUM}\s*(?:-|–|—|\bto\b|\bthrough\b)\s*{_NUM}"
    rf"|\b(?:at least|at most|no more than|no less than|not more than|not less than|up to"
    rf"|less than or equal to|greater than or equal to|less than|greater than|more than"
    rf"|fewer than|minimum(?: of)?|maximum(?: of)?|min|max|below|above)\s+{_NUM}"
    rf"|{_NUM}\s+or\s+(?:more|less|fewer|above|below|higher|lower)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.,])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
_QUOTED = re.compile(r"\"([^\"\n]{1,40})\"|'([^'\n]{1,40})'")


#: Characters of the instruction an anchor is shown in (around the value).
SNIPPET_CHARS = 120


@dataclass(frozen=True)
class Anchor:
    """One value in a prompt's format instruction that is a valid answer.

    Attributes:
        value: the offending value as written (``40``, ``"C"``, ``{"hours": 40}``).
        snippet: the example or line it was found in.
        reason: why it anchors (which field accepts it).
    """

    value: str
    snippet: str
    reason: str

    def describe(self) -> str:
        snippet = " ".join(self.snippet.split())
        if len(snippet) > SNIPPET_CHARS:  # cut around the value, which stays in sight
            at = max(snippet.find(" ".join(self.value.split())), 0)
            start = max(0, min(at - SNIPPET_CHARS // 3, len(snippet) - SNIPPET_CHARS))
            end = start + SNIPPET_CHARS
            snippet = (
                ("..." if start else "")
                + snippet[start:end]
                + ("..." if end < len(snippet) else "")
            )
        return f"{self.value} in {snippet!r}: {self.reason}"


@dataclass(frozen=True)
class _Leaf:
    """What one answer field accepts: an integer or number range, or a set of labels."""

    field: str
    kind: str  # "integer", "number", "values" (numbers of an enum) or "enum" (labels)
    low: float = float("-inf")
    high: float = float("inf")
    labels: tuple[str, ...] = ()
    numbers: tuple[float, ...] = ()

    def accepts(self, value: Any) -> bool:
        if self.kind == "enum":
            return isinstance(value, str) and value in self.labels
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "values":
            return float(value) in self.numbers
        if self.kind == "integer" and float(value) != int(value):
            return False
        return self.low <= float(value) <= self.high

    def describe(self) -> str:
        if self.kind == "enum":
            return f'a valid "{self.field}" label'
        if self.kind == "values":
            shown = ", ".join(f"{v:g}" for v in sorted(self.numbers))
            return f'a valid "{self.field}" value (one of {shown})'
        what = "whole number" if self.kind == "integer" else "number"
        return f'a valid "{self.field}" value (a {what} from {self.low:g} to {self.high:g})'


@functools.lru_cache(maxsize=256)
def _schema_facts(schema: type[BaseModel]) -> tuple[tuple[_Leaf, ...], frozenset[str]]:
    """The scalar values ``schema`` accepts (per top-level field) and its top-level
    field names, from one JSON schema: building it is most of a scan's time, and
    ``llmecon prompts check`` (and every run's start) scans each reply schema's
    renderings many times."""
    root = schema.model_json_schema()
    defs = {**root.get("definitions", {}), **root.get("$defs", {})}
    leaves: list[_Leaf] = []
    for name, sub in root.get("properties", {}).items():
        leaves.extend(_leaves_of(name, sub, defs, 0))
    return tuple(leaves), frozenset(root.get("properties", {}))


def _leaves_of(field: str, node: Any, defs: dict[str, Any], depth: int) -> Iterator[_Leaf]:
    if not isinstance(node, dict) or depth > 8:
        return
    if "$ref" in node:
        yield from _leaves_of(field, defs.get(node["$ref"].rsplit("/", 1)[-1]), defs, depth + 1)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in node.get(key, []):
            yield from _leaves_of(field, branch, defs, depth + 1)
    if "enum" in node or "const" in node:
        values: list[Any] = node.get("enum", [node.get("const")])
        labels = tuple(v for v in values if isinstance(v, str))
        if labels:
            yield _Leaf(field, "enum", labels=labels)
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers:  # these values only (a grid's moves), not the range they span
            yield _Leaf(field, "values", min(numbers), max(numbers), numbers=tuple(numbers))
        return
    kind = node.get("type")
    if kind == "array":
        yield from _leaves_of(field, node.get("items"), defs, depth + 1)
        for item in node.get("prefixItems", []):
            yield from _leaves_of(field, item, defs, depth + 1)
    elif kind == "object":
        for sub in node.get("properties", {}).values():
            yield from _leaves_of(field, sub, defs, depth + 1)
    elif kind in ("integer", "number"):
        low: Any = node.get("minimum", node.get("exclusiveMinimum", float("-inf")))
        high: Any = node.get("maximum", node.get("exclusiveMaximum", float("inf")))
        yield _Leaf(field, kind, float(low), float(high))


def find_anchors(text: str, schema: type[BaseModel]) -> list[Anchor]:
    """Every example value in ``text``'s format instructions that ``schema`` accepts.

    See the module docstring for what counts as an example; an empty list means the
    prompt gives the model nothing to copy.
    """
    leaves, fields = _schema_facts(schema)
    anchors: list[Anchor] = []
    rest = text
    for span in _brace_spans(text):
        anchors.extend(_example_anchors(span, schema, leaves, fields))
        rest = rest.replace(span, "{…}")
    lines = [line for line in rest.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if FORMAT_INSTRUCTION.search(line):
            anchors.extend(_line_anchors(line, leaves, fields))
            if line.rstrip().endswith(":") and i + 1 < len(lines):  # "For example:" ⏎ 40
                anchors.extend(_line_anchors(lines[i + 1], leaves, fields))
    unique: dict[tuple[str, str], Anchor] = {}
    for anchor in anchors:
        unique.setdefault((anchor.value, anchor.snippet), anchor)
    return list(unique.values())


def _brace_spans(text: str) -> list[str]:
    """The outermost ``{…}`` spans of ``text`` (unbalanced braces are ignored)."""
    spans: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _example_anchors(
    span: str, schema: type[BaseModel], leaves: Sequence[_Leaf], fields: AbstractSet[str]
) -> list[Anchor]:
    parsed = _parse_example(span)
    if isinstance(parsed, dict):
        try:
            schema.model_validate(parsed)
        except ValidationError:
            pass
        else:
            return [Anchor(span, span, "the example is itself a valid answer")]
        found = []
        for key, value in parsed.items():
            # under a key the answer does not have (`"hour"`, `"Hours"`), a value is
            # still one a model copies into the field it does have
            known = key in fields
            field_leaves = [leaf for leaf in leaves if leaf.field == key] if known else leaves
            for scalar in _scalars(value):
                leaf = next((lf for lf in field_leaves if lf.accepts(scalar)), None)
                if leaf is not None:
                    where = "" if known else f" (given under {json.dumps(key)}, not a field)"
                    found.append(Anchor(json.dumps(scalar), span, leaf.describe() + where))
        return found
    # Pseudo-JSON ({"rates": [7 whole numbers]}): any valid value in it is an anchor.
    return _token_anchors(span, span, leaves, fields)


def _parse_example(span: str) -> Any:
    for candidate in (span, span.replace("'", '"')):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def _scalars(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    else:
        yield value


def _line_anchors(line: str, leaves: Sequence[_Leaf], fields: AbstractSet[str]) -> list[Anchor]:
    return _token_anchors(_BOUNDS.sub(" ", line), line.strip(), leaves, fields)


def _token_anchors(
    text: str, snippet: str, leaves: Sequence[_Leaf], fields: AbstractSet[str]
) -> list[Anchor]:
    found = []
    for match in _NUMBER.finditer(text):
        number = float(match.group().replace(",", ""))
        value: float | int = int(number) if number.is_integer() else number
        leaf = next((lf for lf in leaves if lf.kind != "enum" and lf.accepts(value)), None)
        if leaf is not None:
            found.append(Anchor(match.group(), snippet, leaf.describe()))
    labels = {label: leaf for leaf in leaves if leaf.kind == "enum" for label in leaf.labels}
    for match in _QUOTED.finditer(text):
        word = match.group(1) or match.group(2)
        if word in labels and word not in fields:
            found.append(Anchor(match.group(), snippet, labels[word].describe()))
    for label, leaf in labels.items():
        if label in fields or not re.fullmatch(r"[A-Za-z]", label):
            continue
        # a bare single-letter label; the article "A" (or "I") before a word is not one
        article = r"(?!\s+[A-Za-z]{2})" if label in ("A", "I") else ""
        pattern = rf"(?<![\w\"']){re.escape(label)}(?![\w\"']){article}"
        for match in re.finditer(pattern, text):
            found.append(Anchor(match.group(), snippet, leaf.describe()))
    return found
