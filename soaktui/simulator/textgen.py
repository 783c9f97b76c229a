"""What the simulated models say: a tokenizer, seeded prose, and tool calls in each format.

The simulator needs text that is varied (so logs and reports look like a real run), reproducible
under a seed, cheap to produce at tens of thousands of tokens a second, and countable exactly: a
token here is one match of `\\w+|[^\\w\\s]`, so `count_tokens(answer) == completion_tokens` for every
prose answer the simulator streams (one token per chunk).
"""

from __future__ import annotations

import random
import re
from typing import Any

import orjson

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_PIECE_RE = re.compile(r"\s*(?:\w+|[^\w\s])")
_LENGTH_RE = re.compile(r"(\d[\d,]*)\s*(?:-\s*\d[\d,]*\s*)?(words?|tokens?)\b", re.IGNORECASE)

MAX_REQUESTED_TOKENS = 200_000  # a prompt asking for more is capped here (and by max_tokens)


def count_tokens(text: str) -> int:
    """The simulator's token count of `text`."""
    return len(TOKEN_RE.findall(text))


def split_tokens(text: str) -> list[str]:
    """Split `text` into pieces of one token each (leading whitespace kept), joining back to `text`."""
    pieces = _PIECE_RE.findall(text)
    if not pieces:
        return [text] if text else []
    tail = len(text) - sum(len(p) for p in pieces)
    if tail:
        pieces[-1] += text[-tail:]
    return pieces


def message_text(content: Any) -> str:
    """The text of a message's `content` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def count_prompt_tokens(messages: list[Any], tools: list[Any] | None) -> int:
    """Prompt tokens: the tokens of every message's text and tool calls, plus the tool definitions."""
    total = 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        total += count_tokens(message_text(m.get("content")))
        if m.get("tool_calls"):
            total += count_tokens(orjson.dumps(m["tool_calls"]).decode())
    if tools:
        total += count_tokens(orjson.dumps(tools).decode())
    return total


def requested_length(text: str) -> tuple[int, str] | None:
    """(N, "words" | "tokens") when `text` asks for roughly N words or tokens; the last mention wins."""
    matches = _LENGTH_RE.findall(text)
    if not matches:
        return None
    number, unit = matches[-1]
    n = int(number.replace(",", ""))
    if n <= 0:
        return None
    return min(n, MAX_REQUESTED_TOKENS), "words" if unit.lower().startswith("word") else "tokens"


_WORD_TEXT = (
    "the model server request token stream latency memory context window answer question system "
    "test night morning report figure measure value signal noise channel buffer cache thread queue "
    "process engine runtime machine hardware thermal fan clock cycle batch prompt output input "
    "careful steady quick slow bright quiet simple complex useful honest clear exact rough small "
    "large early late long short warm cold open closed local remote silent busy patient eager "
    "river mountain garden harbor lantern meadow orchard valley forest island bridge tower market "
    "library kitchen workshop village station compass ledger journal letter window doorway path "
    "walks carries holds shows keeps builds reads writes counts checks waits listens answers "
    "returns follows gathers measures records compares balances repeats finishes starts turns "
    "and but so because while when where after before although unless since until "
    "a an one every each some many few most other another this that these those its their "
    "of in on at by with from into over under between through across around toward without "
    "always often rarely never sometimes usually again still already soon later today tomorrow "
    "light water stone paper iron glass wood salt bread music color shadow season weather story "
    "people friend teacher worker traveler neighbor builder reader writer keeper guide watcher"
)
WORDS = tuple(_WORD_TEXT.split())
_SENTENCE_END = (".",) * 10 + ("!", "?")


def prose_tokens(rng: random.Random, n_tokens: int | None = None, n_words: int | None = None) -> list[str]:
    """Seeded prose as token pieces: exactly `n_tokens` tokens, or whole sentences until `n_words` words.

    The result ends with sentence punctuation. Joined, it reads as paragraphs of plain sentences.
    """
    out: list[str] = []
    words = 0
    in_par = 0
    par_len = rng.randint(3, 6)
    choice = rng.choice
    random_ = rng.random
    word_goal = n_words or 0
    while (len(out) < n_tokens) if n_tokens is not None else (words < word_goal):
        length = rng.randint(6, 18)
        for i in range(length):
            w = choice(WORDS)
            if i == 0:
                w = w.capitalize()
                if not out:
                    sep = ""
                elif in_par >= par_len:
                    sep, in_par, par_len = "\n\n", 0, rng.randint(3, 6)
                else:
                    sep = " "
            else:
                sep = " "
            out.append(sep + w)
            words += 1
            if 0 < i < length - 1 and random_() < 0.12:
                out.append(",")
        out.append(choice(_SENTENCE_END))
        in_par += 1
    if n_tokens is not None:
        del out[n_tokens:]
        if n_tokens > 1 and out[-1] not in _SENTENCE_END:
            out[-1] = "."
    return out


def sentence(rng: random.Random, n_words: int, end: str = ".") -> str:
    """One seeded sentence of `n_words` words (at least one), capitalised, ending with `end`."""
    words = [rng.choice(WORDS) for _ in range(max(n_words, 1))]
    words[0] = words[0].capitalize()
    return " ".join(words) + end


# -- tools ----------------------------------------------------------------------------------------

def tool_name(tool: Any) -> str | None:
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        name = tool["function"].get("name")
        return name if isinstance(name, str) and name else None
    return None


def tool_call_text(style: str, calls: list[tuple[str, dict[str, Any]]]) -> str:
    """Tool calls written as text, the way models without native tool parsing emit them."""
    if style == "hermes":
        return "\n".join(
            "<tool_call>\n" + orjson.dumps({"name": n, "arguments": a}).decode() + "\n</tool_call>"
            for n, a in calls
        )
    if style == "llama3":  # Llama 3.1 JSON-based tool calling: {"name", "parameters"}, one per line
        return "\n".join(orjson.dumps({"name": n, "parameters": a}).decode() for n, a in calls)
    if style == "mistral":
        return "[TOOL_CALLS] " + orjson.dumps([{"name": n, "arguments": a} for n, a in calls]).decode()
    raise ValueError(f"no text format for tool style {style!r}")
