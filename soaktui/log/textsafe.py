"""Server text made safe to store and to show: one pass for every string a server can send us.

A server's error bodies, answers and model ids end up in events.jsonl, the text logs, headless
stderr, the reports and the dashboard. Written raw, an escape sequence in them drives the terminal
that shows them (`ESC ] 0 ; title BEL` sets its title, `ESC [ 2 J` clears the screen, C1 `CSI`
0x9b does the same on terminals that honour 8-bit controls), and a server that echoes request
headers hands back the API key. So every such string goes through `Sanitiser.text`:

- control characters other than newline and tab (C0 0x00-0x1f, DEL 0x7f, C1 0x80-0x9f) are shown
  as visible escapes (`\\x1b`, `\\x9b`): an escape sequence loses its ESC and becomes plain text
  that still says what the server sent;
- anything shaped like a credential becomes `<redacted>`: the configured API key, a token after
  `Bearer` (RFC 6750's b64token characters, 8 or more with a digit, or 20 or more), and
  OpenAI-style `sk-...` keys. A configured key shorter than 4 characters is not a secret worth
  garbling text for (a placeholder such as "x"): it is left alone.

Where it runs (docs/events.md, "Server text"): the event bus passes every event's fields through
the engine's sanitiser (configured with the key) before any sink sees them; the log readers pass
events of logs written before this existed through the default one (no key known), with a byte
prefilter so a clean log costs one regex scan per line; command-line output that does not come
from events (setup errors, `soaktui discover`, `soaktui ctl status`, `soaktui models`) goes
through `visible`. The fast path is one compiled regex search per string: text with nothing to
change is returned as the same object, and so are containers with nothing changed inside.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "<redacted>"
MIN_SECRET_CHARS = 4  # a configured key shorter than this is redacted nowhere (see above)

_CONTROL = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"
_TOKEN_CHARS = r"[A-Za-z0-9._~+/=-]"
_BEARER = rf"(?i:bearer)[ \t]+(?:(?={_TOKEN_CHARS}*[0-9]){_TOKEN_CHARS}{{8,}}|{_TOKEN_CHARS}{{20,}})"
_SK_KEY = r"\bsk-[A-Za-z0-9_-]{16,}"

# What a JSON line can hold when its decoded text has controls to show: escaped C0 (orjson writes
# \u00XX, and \r for a carriage return; other writers may escape DEL and C1 too), raw DEL or C1 (UTF-8
# C2 80..9F). Backspace and form feed (\b, \f) are left to the bus: they drive no sequence, and
# looking for them doubles the cost. Credential shapes are not looked for either: the bus redacts
# them before they are stored; a log that already holds a key is not made safe by reading it.
# `_SUSPECT_BYTES` is the coarse first test (`suspect`: memchr scans and a walk over the backslashes,
# ~8 GB/s on a clean log, where a regex scans at ~40 MB/s), run over a whole block; only a block it
# flags has its lines looked at, then the regex, then a decoded event's strings. False positives
# cost only time.
_SUSPECT_BYTES = (b"\\u00", b"\\r", b"\x7f", b"\xc2")
_BACKSLASH_WALK = 4096  # backslashes `suspect` visits one by one in a block before searching
_RAW_SUSPECT = re.compile(rb"\\u00[01789]|\\r|\x7f|\xc2[\x80-\x9f]")


class Sanitiser:
    """Neutralises control characters and redacts credentials (the given secrets, and token shapes)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        keys = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        parts = [f"(?P<secret>{'|'.join(map(re.escape, keys))})"] if keys else []
        parts += [f"(?P<bearer>{_BEARER})", f"(?P<sk>{_SK_KEY})", f"(?P<control>{_CONTROL})"]
        self._pattern = re.compile("|".join(parts))

    def text(self, s: str) -> str:
        """`s` safe to store and print; `s` itself when nothing in it needs changing."""
        if self._pattern.search(s) is None:
            return s
        return self._pattern.sub(_replacement, s)

    def neutralise(self, obj: Any) -> Any:
        """`obj` with every string in it (dict keys too, through lists and tuples) made safe by
        `text`; the same object when nothing changed."""
        return _walk(obj, self.text)


def _replacement(m: re.Match[str]) -> str:
    kind = m.lastgroup
    if kind == "control":
        return f"\\x{ord(m.group()):02x}"
    if kind == "bearer":
        return "Bearer " + REDACTED
    return REDACTED


def _walk(obj: Any, fix: Callable[[str], str]) -> Any:
    t = type(obj)
    if t is str:
        return fix(obj)
    if t is dict:
        items = [(fix(k) if type(k) is str else k, _walk(v, fix)) for k, v in obj.items()]
        if all(nk is k and nv is v for (nk, nv), (k, v) in zip(items, obj.items(), strict=True)):
            return obj
        return dict(items)
    if t is list or t is tuple:
        new = [_walk(x, fix) for x in obj]
        if all(a is b for a, b in zip(new, obj, strict=True)):
            return obj
        return new if t is list else tuple(new)
    return obj


DEFAULT = Sanitiser()
visible: Callable[[str], str] = DEFAULT.text
neutralise: Callable[[Any], Any] = DEFAULT.neutralise


def suspect(raw: bytes) -> bool:
    """Whether log bytes (a block or a line) may hold text for the pass; False is certain.

    The same answer as a substring search for each of `_SUSPECT_BYTES`, faster on a clean log: the
    one-byte ones are memchr scans, and the two escapes start with a backslash, which is rare in a
    log, so the backslashes are visited from one to the next (a multi-byte search over a block of
    digits runs at a fraction of memchr's speed). Past _BACKSLASH_WALK of them the searches take over.
    """
    if b"\x7f" in raw or b"\xc2" in raw:
        return True
    find, starts = raw.find, raw.startswith
    i = find(b"\\")
    for _ in range(_BACKSLASH_WALK):
        if i < 0:
            return False
        if starts(b"r", i + 1) or starts(b"u00", i + 1):
            return True
        i = find(b"\\", i + 1)
    return i >= 0 and (find(b"\\u00", i) >= 0 or find(b"\\r", i) >= 0)


def from_log(line: bytes, event: Any) -> Any:
    """`event`, decoded from the log line `line`, neutralised if the raw line shows it may need it
    (logs written before the bus sanitised events, or by another tool). Call it for lines of a
    block `suspect` flagged: the others need nothing."""
    return event if _RAW_SUSPECT.search(line) is None else DEFAULT.neutralise(event)


__all__ = ["DEFAULT", "MIN_SECRET_CHARS", "REDACTED", "Sanitiser", "from_log", "neutralise", "suspect", "visible"]
