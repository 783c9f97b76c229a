"""Answers in the form a prompt asks for: a fenced code block, a list of N items, JSON only, SQL.

soaktui's prompt_variety scenario checks the *form* of an answer (soaktui/scenarios/checks.py). A real
instruct model mostly honours "put the code in a ```python block" or "a numbered list of at least 5
steps", and sometimes answers in prose anyway; the simulator does the same, how often being each
persona's `compliance`, so the checks measure something against it and the report shows models
differing. `detect` reads the asked form from a prompt with a few regexes (only the head and tail of
a long prompt, so a 100k-token document costs what a short prompt does); `render` writes a seeded
answer of that form as plain text, which the caller splits into one-token chunks.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import orjson

from soaktui.simulator.textgen import sentence

CODE = "code"
LIST = "list"
JSON = "json"

SCAN_CHARS = 3000  # a prompt longer than twice this is searched at its head and tail only
MAX_ITEMS = 30
MAX_KEYS = 12

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_NUM = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")"

_FENCE_ASK = re.compile(r"```[ \t]*([A-Za-z][\w+#.-]*)")
_JSON_ONLY = re.compile(r"\b(?:only|just)\s+(?:valid\s+|raw\s+)?json\b|\bjson\s+only\b", re.I)
_JSON_ASK = re.compile(
    r"\b(?:return|respond|reply|answer|output|format)\b[^.\n]{0,60}?\bjson\b"
    r"|\b(?:as|in)\s+(?:a\s+)?json\b|\ba\s+json\s+(?:object|document|array)\b",
    re.I,
)
_LIST_ASK = re.compile(
    r"(?:^|[.!?:]\s+)list\b|\b(?:as|in)\s+an?\s+(?:\w+\s+)?list\b|\bnumbered\s+list\b|\bbullet",
    re.I | re.M,
)
_NUMBERED = re.compile(r"\bnumbered\b|\bstep[- ]by[- ]step\b|\bordered\s+list\b", re.I)
_BULLETED = re.compile(r"\bbullet", re.I)
_AT_LEAST = re.compile(rf"\b(?:at\s+least|no\s+fewer\s+than|(?:a\s+)?minimum\s+of)\s+{_NUM}\b", re.I)
_COUNTS = (
    re.compile(rf"\b(?:exactly|top)\s+{_NUM}\b", re.I),
    re.compile(rf"\blist(?:\s+of)?\s+{_NUM}\b", re.I),
    re.compile(rf"\b{_NUM}\s+(?:[a-z][\w-]*\s+){{0,2}}?[a-z]{{2,}}s\b", re.I),
)
_CODE_ASK = re.compile(
    r"(?:^|[.!?]\s+)(?:please\s+)?(?:write|implement|create|generate|produce|draft|give\s+me|show\s+me)\b"
    r"[^.\n]{0,80}?\b(?:function|script|program|class|component|query|queries|migration|workflow|"
    r"dockerfile|module|snippet|code|statement|manifest|handler|method)\b"
    r"|\bcode\s+block\b|\bfenced\s+block\b",
    re.I | re.M,
)
_WORD_COUNT = re.compile(r"\b\d[\d,]*\s+words?\b", re.I)
_LANGUAGES = (
    (re.compile(r"\bdockerfile\b", re.I), "dockerfile"),
    (
        re.compile(r"\bgithub\s+actions\b|\byaml\b|\bdocker[- ]compose\b|\bkubernetes\s+manifest\b", re.I),
        "yaml",
    ),
    (re.compile(r"\bsql\b", re.I), "sql"),
    (re.compile(r"\breact\b|\bjsx\b", re.I), "jsx"),
    (re.compile(r"\btypescript\b", re.I), "typescript"),
    (re.compile(r"\bjavascript\b|\bnode\.js\b", re.I), "javascript"),
    (re.compile(r"\bbash\b|\bshell\s+script\b", re.I), "bash"),
    (re.compile(r"\bGo\b|\bgolang\b"), "go"),  # case-sensitive: "go" is also a verb
    (re.compile(r"\bpython\b", re.I), "python"),
)

_KEY = re.compile(r"`([A-Za-z_][\w.-]*)`")
_CALL = re.compile(r"`([A-Za-z_]\w*)\(([^`)]*)\)`")
_IDENT = re.compile(r"`([A-Za-z_]\w*)`")
_TABLE = re.compile(r"\b([A-Za-z_]\w*)\s*\(\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)+)\s*\)")
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_PY_VERSION = re.compile(r"\b3\.\d{1,2}\b")
_PERCENT = re.compile(r"\b(\d{1,3})\s?%")
_INT_KEY = re.compile(
    r"(?:^|_)(?:days?|hours?|minutes?|seconds?|count|number|limit|price|total|amount|age|size|year|"
    r"max|min|retries|quantity|score|port|threshold|id)(?:$|_)",
    re.I,
)
_BOOL_KEY = re.compile(r"^(?:is|has|can|should|allow|enable)(?:_|[A-Z]|$)|enabled$", re.I)


@dataclass(frozen=True)
class Form:
    """The form an answer was asked to take."""

    kind: str  # code | list | json
    lang: str = ""  # code: the fence label (python, jsx, sql, ...)
    items: int = 0  # list: how many items were asked for (0: not said)
    at_least: bool = False  # list: "at least N"
    numbered: bool = True  # list: numbered (1. 2. 3.) or bulleted (- )
    fenced: bool = False  # json: in a ```json block with a sentence around it, or the bare object


def _scan_text(prompt: str) -> str:
    if len(prompt) <= 2 * SCAN_CHARS:
        return prompt
    return prompt[:SCAN_CHARS] + "\n" + prompt[-SCAN_CHARS:]


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word.lower()]


def asked_count(text: str) -> tuple[int, bool]:
    """(N, at_least) for "at least N", "exactly N", "list N things", "three pricing tiers"; (0, False)."""
    m = _AT_LEAST.search(text)
    if m:
        return min(_number(m.group(1)), MAX_ITEMS), True
    for pattern in _COUNTS:
        m = pattern.search(text)
        if m and _number(m.group(1)) > 0:
            return min(_number(m.group(1)), MAX_ITEMS), False
    return 0, False


def _implied_language(text: str) -> str:
    """The language of the earliest language name in `text`, or ''."""
    best, where = "", len(text) + 1
    for pattern, lang in _LANGUAGES:
        m = pattern.search(text)
        if m and m.start() < where:
            best, where = lang, m.start()
    return best


def detect(prompt: str) -> Form | None:
    """The form `prompt` asks its answer to take, or None for free prose."""
    if not prompt:
        return None
    text = _scan_text(prompt)
    fence = _FENCE_ASK.search(text)
    if fence:
        lang = fence.group(1).lower()
        if lang == "json":
            return Form(JSON, lang="json", fenced=True)
        return Form(CODE, lang=lang)
    if _JSON_ONLY.search(text):
        return Form(JSON)
    if _JSON_ASK.search(text):
        return Form(JSON, fenced=True)
    if _LIST_ASK.search(text):
        n, at_least = asked_count(text)
        numbered = bool(_NUMBERED.search(text)) or not _BULLETED.search(text)
        return Form(LIST, items=n, at_least=at_least, numbered=numbered)
    if _CODE_ASK.search(text) and not _WORD_COUNT.search(text):
        lang = _implied_language(text)
        if lang:
            return Form(CODE, lang=lang)
    return None


# -- rendering ------------------------------------------------------------------------------------


def render(form: Form, prompt: str, rng: random.Random) -> str:
    """A seeded answer of `form` to `prompt` (plain text; names and figures taken from the prompt)."""
    text = _scan_text(prompt)
    if form.kind == LIST:
        return _render_list(form, rng)
    if form.kind == JSON:
        body = orjson.dumps(_json_value(text, rng), option=orjson.OPT_INDENT_2).decode()
        return _wrap("json", body, rng) if form.fenced else body
    return _wrap(form.lang, _code(form.lang, text, rng), rng)


def _wrap(lang: str, body: str, rng: random.Random) -> str:
    """A fenced block, usually with a sentence before it and sometimes one after."""
    parts = []
    if rng.random() < 0.8:
        parts.append(sentence(rng, rng.randint(6, 14), ":") + "\n\n")
    parts.append(f"```{lang}\n{body}\n```")
    if rng.random() < 0.5:
        parts.append("\n\n" + sentence(rng, rng.randint(8, 20)))
    return "".join(parts)


def _render_list(form: Form, rng: random.Random) -> str:
    n = form.items or rng.randint(3, 6)
    if form.at_least and rng.random() < 0.3:
        n += 1
    lines = []
    if rng.random() < 0.7:
        lines.append(sentence(rng, rng.randint(6, 14), ":") + "\n")
    for i in range(1, n + 1):
        marker = f"{i}." if form.numbered else "-"
        label = ""
        if rng.random() < 0.5:
            label = "**" + " ".join(_noun(rng) for _ in range(rng.randint(1, 2))).title() + "**: "
        lines.append(f"{marker} {label}{sentence(rng, rng.randint(7, 18))}")
    if rng.random() < 0.6:
        lines.append("\n" + sentence(rng, rng.randint(10, 24)))
    return "\n".join(lines)


# Nouns for identifiers: no keyword of any language the simulator writes.
_NOUN_TEXT = (
    "model server request token stream memory context window answer report figure value signal channel "
    "buffer cache queue engine machine batch prompt output input river garden harbor lantern meadow "
    "orchard valley forest island bridge tower market library kitchen workshop village station compass "
    "ledger journal letter path stone paper music color shadow season weather story"
)
_NOUNS = tuple(_NOUN_TEXT.split())


def _noun(rng: random.Random) -> str:
    return rng.choice(_NOUNS)


def _ident(rng: random.Random, parts: int = 2) -> str:
    return "_".join(_noun(rng) for _ in range(parts))


def _camel(rng: random.Random, parts: int = 2) -> str:
    return "".join(_noun(rng).capitalize() for _ in range(parts))


# -- JSON -----------------------------------------------------------------------------------------


def json_shape(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """The keys a prompt names in backticks: (key, kind, subkeys), kind scalar | list | object | objects.

    "keys `tiers` (a list of objects with `limit` and `approver`) and `escalation_days`" gives tiers as
    a list of objects with the two subkeys and escalation_days as a scalar.
    """
    out: list[tuple[str, str, tuple[str, ...]]] = []
    seen: set[str] = set()
    pos = 0
    while len(out) < MAX_KEYS:
        m = _KEY.search(text, pos)
        if m is None:
            break
        key, pos = m.group(1), m.end()
        kind, sub = "scalar", ()
        rest = text[pos : pos + 300]
        paren = re.match(r"\s*\(", rest)
        if paren:
            depth, close = 1, len(rest)
            for i in range(paren.end(), len(rest)):
                depth += {"(": 1, ")": -1}.get(rest[i], 0)
                if depth == 0:
                    close = i
                    break
            inner = rest[paren.end() : close]
            listy = re.search(r"\b(?:list|array)\b", inner, re.I) is not None
            sub = tuple(dict.fromkeys(_KEY.findall(inner)))
            kind = ("objects" if listy else "object") if sub else ("list" if listy else "scalar")
            pos += close + 1
        if key not in seen:
            seen.add(key)
            out.append((key, kind, sub))
    return out


def _scalar(key: str, rng: random.Random) -> object:
    if _BOOL_KEY.search(key):
        return rng.random() < 0.5
    if _INT_KEY.search(key):
        return rng.randint(1, 99) * 10 ** rng.randint(0, 3)
    return sentence(rng, rng.randint(3, 10), "")


def _json_value(text: str, rng: random.Random) -> dict[str, object]:
    shape = json_shape(text)
    if not shape:
        return {
            "answer": sentence(rng, rng.randint(6, 16)),
            "details": [sentence(rng, rng.randint(3, 8), "") for _ in range(rng.randint(2, 4))],
        }
    count, _ = asked_count(text)
    obj: dict[str, object] = {}
    for key, kind, sub in shape:
        n = count or rng.randint(2, 4)
        if kind == "objects":
            obj[key] = [{k: _scalar(k, rng) for k in sub} for _ in range(n)]
        elif kind == "object":
            obj[key] = {k: _scalar(k, rng) for k in sub}
        elif kind == "list":
            obj[key] = [sentence(rng, rng.randint(1, 4), "").lower() for _ in range(n)]
        else:
            obj[key] = _scalar(key, rng)
    return obj


# -- code -----------------------------------------------------------------------------------------


def _code(lang: str, text: str, rng: random.Random) -> str:
    writer = _WRITERS.get(lang, _generic)
    return writer(text, rng)


def _call_names(text: str, rng: random.Random) -> tuple[str, list[str]]:
    """A function name and its parameters: `name(args)` from the prompt, else seeded ones."""
    m = _CALL.search(text)
    if m:
        args = [a.strip() for a in m.group(2).split(",") if a.strip().isidentifier()]
        return m.group(1), args or [_noun(rng)]
    return _ident(rng), [_noun(rng) + "s"]


def _python(text: str, rng: random.Random) -> str:
    name, args = _call_names(text, rng)
    src, out, item = args[0], _noun(rng) + "_out", _noun(rng)
    if item in (src, out):
        item += "_item"
    lines = [f"def {name}({', '.join(args)}):", f'    """{sentence(rng, rng.randint(5, 12))}"""']
    lines += [f"    if not {src}:", f'        raise ValueError("{sentence(rng, rng.randint(2, 5), "")}")']
    lines += [f"    {out} = []", f"    for {item} in {src}:"]
    for _ in range(rng.randint(1, 4)):
        v = _ident(rng)
        lines.append(f"        {v} = {item} * {rng.randint(2, 60)} + {rng.randint(0, 9)}")
        lines.append(f"        {out}.append({v})")
    lines.append(f"    return {out}")
    return "\n".join(lines)


def _jsx(text: str, rng: random.Random) -> str:
    names = [n for n in _IDENT.findall(text) if n[:1].isupper()]
    comp = names[0] if names else _camel(rng)
    table = _TABLE.search(text)
    cols = [c.strip() for c in table.group(2).split(",")] if table else ["id", _noun(rng), _noun(rng)]
    rows = table.group(1) if table else _noun(rng) + "s"
    key = cols[0]
    sort = cols[-1]
    head = "".join(f"<th>{c}</th>" for c in cols[:-1])
    cells = "".join(f"<td>{{row.{c}}}</td>" for c in cols)
    return "\n".join(
        [
            'import { useState } from "react";',
            "",
            f"export default function {comp}({{ {rows} }}) {{",
            "  const [ascending, setAscending] = useState(true);",
            f"  const sorted = [...{rows}].sort((a, b) =>",
            f"    ascending ? a.{sort} - b.{sort} : b.{sort} - a.{sort}",
            "  );",
            "  return (",
            "    <table>",
            "      <thead>",
            "        <tr>",
            f"          {head}",
            f"          <th onClick={{() => setAscending(!ascending)}}>{sort}</th>",
            "        </tr>",
            "      </thead>",
            "      <tbody>",
            "        {sorted.map((row) => (",
            f"          <tr key={{row.{key}}}>{cells}</tr>",
            "        ))}",
            "      </tbody>",
            "    </table>",
            "  );",
            "}",
        ]
    )


def _javascript(text: str, rng: random.Random) -> str:
    name, args = _call_names(text, rng)
    src = args[0]
    lines = [f"export function {name}({', '.join(args)}) {{", f"  // {sentence(rng, rng.randint(5, 12))}"]
    lines.append("  const result = [];")
    lines.append(f"  for (const item of {src}) {{")
    for _ in range(rng.randint(1, 3)):
        lines.append(f"    result.push(item * {rng.randint(2, 60)} + {rng.randint(0, 9)});")
    lines += ["  }", "  return result;", "}"]
    return "\n".join(lines)


def _sql(text: str, rng: random.Random) -> str:
    low = text.lower()
    idents = _IDENT.findall(text)
    if any(w in low for w in ("migration", "alter", "add a column", "column")):
        table = next((n for n in idents if re.search(rf"`{n}`\s+table", text)), None)
        column = next((n for n in idents if re.search(rf"`{n}`\s+(?:\w+\s+)?column", text)), None)
        table = table or _noun(rng) + "s"
        column = column or _ident(rng)
        nullable = "NULL" if "nullable" in low or "null" in low else "NOT NULL DEFAULT now()"
        index = f"idx_{table}_{column}"
        return (
            f"-- up\nALTER TABLE {table} ADD COLUMN {column} TIMESTAMP {nullable};\n"
            f"CREATE INDEX {index} ON {table} ({column});\n\n"
            f"-- down\nDROP INDEX IF EXISTS {index};\nALTER TABLE {table} DROP COLUMN {column};"
        )
    tables = [(m.group(1), [c.strip() for c in m.group(2).split(",")]) for m in _TABLE.finditer(text)]
    count, _ = asked_count(text)
    limit = count or rng.randint(5, 20)
    if len(tables) >= 2:
        (t1, c1), (t2, c2) = tables[:2]
        fk = next((c for c in c2 if c.endswith("_id")), "parent_id")
        value = next((c for c in c2 if c in ("total", "amount", "price", "value")), c2[-1])
        label = next((c for c in c1 if c == "name"), c1[-1])
        when = next((c for c in c2 if c.endswith("_at") or "date" in c), None)
        lines = [
            f"SELECT c.id, c.{label}, SUM(o.{value}) AS {value}_sum",
            f"FROM {t1} AS c",
            f"JOIN {t2} AS o ON o.{fk} = c.id",
        ]
        year = _YEAR.search(text)
        if when and year:
            y = int(year.group(0))
            lines.append(f"WHERE o.{when} >= '{y}-01-01' AND o.{when} < '{y + 1}-01-01'")
        lines += [f"GROUP BY c.id, c.{label}", f"ORDER BY {value}_sum DESC", f"LIMIT {limit};"]
        return "\n".join(lines)
    if tables:
        table, cols = tables[0]
    else:
        table, cols = _noun(rng) + "s", ["id", _noun(rng), _ident(rng)]
    return (
        f"SELECT {', '.join(cols)}\nFROM {table}\nWHERE {cols[-1]} IS NOT NULL\n"
        f"ORDER BY {cols[0]}\nLIMIT {limit};"
    )


def _yaml(text: str, rng: random.Random) -> str:
    low = text.lower()
    if "workflow" in low or "github actions" in low:
        versions = list(dict.fromkeys(_PY_VERSION.findall(text))) or ["3.12"]
        matrix = ", ".join(f'"{v}"' for v in versions)
        trigger = "pull_request" if "pull request" in low else "push"
        runner = "pytest -q" if "pytest" in low else "make test"
        return "\n".join(
            [
                f"name: {_noun(rng).capitalize()} tests",
                f"on: [{trigger}]",
                "jobs:",
                "  test:",
                "    runs-on: ubuntu-latest",
                "    strategy:",
                "      matrix:",
                f"        python-version: [{matrix}]",
                "    steps:",
                "      - uses: actions/checkout@v4",
                "      - uses: actions/setup-python@v5",
                "        with:",
                "          python-version: ${{ matrix.python-version }}",
                "      - run: pip install -e .[test]",
                f"      - run: {runner}",
            ]
        )
    lines = [f"{_ident(rng)}:"]
    for _ in range(rng.randint(3, 7)):
        lines.append(f"  {_noun(rng)}: {rng.choice([str(rng.randint(1, 500)), _noun(rng)])}")
    return "\n".join(lines)


def _dockerfile(text: str, rng: random.Random) -> str:
    user = _noun(rng)
    port = rng.choice((8000, 8080, 5000))
    app = "main:app" if "fastapi" in text.lower() else f"{_noun(rng)}:app"
    return "\n".join(
        [
            "FROM python:3.12-slim AS build",
            "WORKDIR /src",
            "COPY requirements.txt .",
            "RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt",
            "",
            "FROM python:3.12-slim",
            f"RUN useradd --create-home --uid 10001 {user}",
            "WORKDIR /app",
            "COPY --from=build /wheels /wheels",
            "RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels",
            f"COPY --chown={user}:{user} . .",
            f"USER {user}",
            f"EXPOSE {port}",
            f'CMD ["uvicorn", "{app}", "--host", "0.0.0.0", "--port", "{port}"]',
        ]
    )


def _bash(text: str, rng: random.Random) -> str:
    pct = _PERCENT.search(text)
    limit = int(pct.group(1)) if pct else rng.randint(50, 95)
    var = _noun(rng) + "_pct"
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            "set -euo pipefail",
            "",
            f"threshold={limit}",
            f"{var}=$(df --output=pcent / | tail -n 1 | tr -dc '0-9')",
            f'if [ "${var}" -gt "$threshold" ]; then',
            f'  echo "warning: {sentence(rng, rng.randint(3, 7), "").lower()} (${var}%)" >&2',
            "fi",
        ]
    )


def _go(text: str, rng: random.Random) -> str:
    name, args = _call_names(text, rng)
    fn = "".join(p.capitalize() for p in name.split("_"))
    src = args[0]
    lines = ["package main", "", 'import "fmt"', "", f"func {fn}({src} []int) ([]int, error) {{"]
    lines += [
        f"\tif len({src}) == 0 {{",
        f'\t\treturn nil, fmt.Errorf("{sentence(rng, 3, "").lower()}")',
        "\t}",
    ]
    lines += [f"\tout := make([]int, 0, len({src}))", f"\tfor _, v := range {src} {{"]
    lines.append(f"\t\tout = append(out, v*{rng.randint(2, 60)}+{rng.randint(0, 9)})")
    lines += ["\t}", "\treturn out, nil", "}"]
    return "\n".join(lines)


def _generic(text: str, rng: random.Random) -> str:
    name, args = _call_names(text, rng)
    lines = [f"// {sentence(rng, rng.randint(5, 12))}"]
    for _ in range(rng.randint(2, 6)):
        lines.append(f"{_ident(rng)} = {name}({', '.join(args)}, {rng.randint(1, 99)});")
    return "\n".join(lines)


_WRITERS = {
    "python": _python,
    "py": _python,
    "python3": _python,
    "jsx": _jsx,
    "tsx": _jsx,
    "react": _jsx,
    "javascript": _javascript,
    "js": _javascript,
    "typescript": _javascript,
    "ts": _javascript,
    "sql": _sql,
    "postgresql": _sql,
    "sqlite": _sql,
    "mysql": _sql,
    "yaml": _yaml,
    "yml": _yaml,
    "bash": _bash,
    "sh": _bash,
    "shell": _bash,
    "dockerfile": _dockerfile,
    "docker": _dockerfile,
    "go": _go,
    "golang": _go,
}
