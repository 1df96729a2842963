"""Hostile form input for the fuzz tests (hypothesis), and the checks every response and stored answer must pass.

- ``hostile_value``: odd Unicode (NUL, control characters, invalid UTF-8 such as an encoded lone surrogate,
  RTL and zero-width marks, combining characters, emoji), very long strings, wrongly typed values (numbers,
  JSON, other questions' codes) and HTML/script payloads carrying a unique token ``zq<number>``.
- ``form_body``: a list of (key, value) pairs (a key may repeat) encoded as a browser would post it; a value may
  be ``bytes`` that are not UTF-8.
- ``assert_inert``: no payload appears raw in a page, and the token never lands in markup (a tag, an attribute
  name, a comment or a script), only in text and attribute values.
- ``answer_problems``: what is wrong with stored answers, checked against ``screening.questions`` on its own
  (independently of the form code that stored them).
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
import unicodedata
from html.parser import HTMLParser
from urllib.parse import urlencode

from hypothesis import strategies as st

from screening import questions as qd

TOKEN = "zq"  # no page of the app contains it: every occurrence comes from what a test posted


def payloads(n: int) -> list[str]:
    """Return HTML/script payloads marked with token ``zq<n>``."""
    t = f"x{TOKEN}{n}"
    return [
        f"<script>{t}</script>",
        f'"><img src=x onerror={t}>',
        f"'><svg onload={t}>",
        f"</textarea></title><script>{t}</script>",
        f"<a href=javascript:{t}>y</a>",
        f"<!--{t}-->",
        f'{t} autocomplete=" onfocus={t} autofocus x="',
        f"{t} autocomplete=x",  # a kiosk page rewrites autocomplete attributes: this must stay a value
        f"<style>*{{color:red}}</style>{t}",
    ]


def payload_strategy() -> st.SearchStrategy[str]:
    return st.integers(0, 10**6).flatmap(lambda n: st.sampled_from(payloads(n)))


ODD_TEXT = [
    "", " ", "\t\n\r", "\x00", "a\x00b", "Ann\x00 Example", "\x01\x02\x7f", "\x1b[31mred", "\x85\x9f",
    "\u202eevil\u202c", "\u200f\u200e", "\u200b\u200d\ufeff", "e\u0301\u0301\u0301", "Z\u0334\u0321\u032a\u0350a",
    "\U0001f600\U0001f469\u200d\u2695\ufe0f", "\uffff\ufffe", "\U0010ffff", "\ufffd", "Ω≈ç√", "😀" * 30,
    "١٩٩٠", "²", "𝟙𝟡𝟡𝟘", "0", "00", "-1", "1e9", "99999999999999999999", "3.5", "NaN", "null", "true", "[]",
    "{}", '{"a": 1}', "[1, 2]", "%00", "%3Cscript%3E", "&lt;script&gt;", "&#60;", "../../etc/passwd",
    "' OR '1'='1", "'; DROP TABLE draft; --", "\\", "{{ 7*7 }}", "${7*7}", "yes", "no", "unsure", "none",
    "unknown", "full_face", "type_2", "standard", "other", "add-", "add-injectables", "restart",
]
INVALID_UTF8 = [
    "\ud800".encode("utf-8", "surrogatepass"),  # a lone surrogate, encoded
    "a\udc80b".encode("utf-8", "surrogatepass"),
    b"\xff\xfe", b"\xc0\xbc", b"\x80", b"\xf4\x90\x80\x80", b"\xe2\x82",
]


def long_text() -> st.SearchStrategy[str]:
    return st.builds(lambda ch, n: ch * n, st.sampled_from(["a", "é", "😀", "<", " ", "\u0301", "a "]),
                     st.sampled_from([121, 255, 1001, 2001, 4001, 20_000]))


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ODD_TEXT), payload_strategy(), st.text(max_size=30), long_text(),
                     st.builds(lambda a, b: a + b, payload_strategy(), st.sampled_from(ODD_TEXT)))


def hostile_value() -> st.SearchStrategy[str | bytes]:
    return st.one_of(hostile_text(), hostile_text(), st.sampled_from(INVALID_UTF8))


def junk_key() -> st.SearchStrategy[str | bytes]:
    return st.one_of(st.sampled_from(["x_unknown", "", "csrf_token ", "CSRF_TOKEN", "__proto__", "a[b]", "a.b",
                                      "-0-", "dob-", "x\x00y", "<script>k</script>"]),
                     st.sampled_from(INVALID_UTF8),
                     st.text(alphabet="abcdefghij_-0123456789", min_size=1, max_size=12).map(lambda s: "x_" + s))


def form_body(pairs) -> bytes:
    """Encode (key, value) pairs as application/x-www-form-urlencoded; keys may repeat, values may be bytes."""
    return urlencode(list(pairs)).encode("ascii")


def _quote_undecodable(error: UnicodeDecodeError) -> tuple[str, int]:
    return "".join(f"%{b:02X}" for b in error.object[error.start:error.end]), error.end


codecs.register_error("fuzz.url_quote", _quote_undecodable)


def as_posted(value: str | bytes) -> str:
    """Return a posted value as the server reads it (Werkzeug keeps bytes that are not UTF-8 as %XX)."""
    return value.decode("utf-8", "fuzz.url_quote") if isinstance(value, bytes) else value


def post_form(client, url: str, pairs, **kwargs):
    """POST ``pairs`` as a browser's form would."""
    return client.post(url, data=form_body(pairs), content_type="application/x-www-form-urlencoded", **kwargs)


# -- responses ----------------------------------------------------------------------------


class _Markup(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._raw = None

    def handle_starttag(self, tag, attrs):
        if TOKEN in tag:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if TOKEN in name:
                self.problems.append(f"attribute name {name!r} in <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"event handler {name}={value!r} in <{tag}>")
            if name in ("href", "src", "action", "formaction") and value and TOKEN in value:
                if value.strip().lower().startswith("javascript:"):
                    self.problems.append(f"{name}={value!r} in <{tag}>")
        if tag in ("script", "style"):
            self._raw = tag

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        self._raw = None

    def handle_data(self, data):
        if self._raw and TOKEN in data:
            self.problems.append(f"token inside <{self._raw}>")

    def handle_comment(self, data):
        if TOKEN in data:
            self.problems.append("token inside a comment")


_RAW_PAYLOAD = re.compile(
    r"<script>x" + TOKEN + r"|<img src=x onerror=x" + TOKEN + r"|<svg onload=x" + TOKEN
    + r"|<a href=javascript:x" + TOKEN + r"|<!--x" + TOKEN + r"|<style>\*\{", re.IGNORECASE)


def assert_inert(response, context: str = "") -> None:
    """The response is not a server error, and nothing posted became markup in it."""
    assert response.status_code < 500, (context, response.status_code)
    if response.mimetype not in ("text/html", "application/json", "text/plain") and response.status_code < 300:
        return  # a PDF: checked separately, on its extracted text
    text = response.get_data(as_text=True)
    raw = _RAW_PAYLOAD.search(text)
    assert raw is None, (context, "payload rendered raw", text[max(0, raw.start() - 200):raw.end() + 100])
    if response.mimetype == "text/html":
        parser = _Markup()
        parser.feed(text)
        parser.close()
        assert not parser.problems, (context, parser.problems)


class _Inputs(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type", "text") in ("text", "email", "tel") and attrs.get("name"):
            self.values.setdefault(attrs["name"], []).append(attrs.get("value") or "")


def input_values(html: str) -> dict[str, list[str]]:
    """Return the value of every text box in a page, by name, as a browser parses it."""
    parser = _Inputs()
    parser.feed(html)
    parser.close()
    return parser.values


# -- stored answers -------------------------------------------------------------------------

TEXT_LIMITS = {"name": 120, "email": 254, "tel": 30}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{7,20}$")
_DATE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


def _date_problem(q: qd.Question, value, today: dt.date) -> str | None:
    if value == qd.UNKNOWN:
        return None if q.unknown_allowed else "unknown not allowed"
    m = _DATE.match(value) if isinstance(value, str) else None
    if not m:
        return f"not a date: {value!r}"
    year, month, day = int(m.group(1)), int(m.group(2)), m.group(3)
    if day is None and not q.month_allowed:
        return "month only not allowed"
    try:
        first = dt.date(year, month, int(day) if day else 1)
    except ValueError:
        return f"not a real date: {value!r}"
    last = first if day else (dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1))
    if year < 1900:
        return "before 1900"
    # One day of slack either side: a test may run across midnight.
    if q.dates == "past" and first > today + dt.timedelta(days=1):
        return "in the future"
    if q.dates == "future" and (last < today - dt.timedelta(days=1) or first > today + dt.timedelta(days=731)):
        return "not within the next 2 years"
    return None


def value_problem(q: qd.Question, value, today: dt.date) -> str | None:
    """Return what is wrong with ``value`` as an answer to ``q``, or None."""
    if q.type in (qd.YES_NO, qd.YES_NO_UNSURE, qd.SINGLE):
        return None if isinstance(value, str) and value in q.choice_codes() else f"not a choice: {value!r}"
    if q.type in (qd.MULTI, qd.AREAS):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return f"not a list of codes: {value!r}"
        if len(set(value)) != len(value) or not set(value) <= set(q.choice_codes()):
            return f"unknown or repeated codes: {value!r}"
        if qd.NONE in value and len(value) > 1:
            return "'none' with other codes"
        return None
    if q.type == qd.DATE:
        return _date_problem(q, value, today)
    if q.type == qd.TEXT:
        if not isinstance(value, str) or not value:
            return f"not text: {value!r}"
        if value != " ".join(value.split()):
            return "untrimmed whitespace"
        if len(value) > TEXT_LIMITS.get(q.text_kind, 1000):
            return "too long"
        bad = [c for c in value if unicodedata.category(c) in ("Cc", "Cs")]
        if bad:
            return f"control characters {bad!r}"
        if q.text_kind == "email" and not _EMAIL.match(value):
            return "not an email address"
        if q.text_kind == "tel" and not _PHONE.match(value):
            return "not a phone number"
        return None
    if q.type == qd.GROUP:
        if not isinstance(value, list) or not 1 <= len(value) <= 10:
            return f"not 1 to 10 items: {value!r}"
        names = {f.id for f in q.fields}
        for item in value:
            if not isinstance(item, dict) or set(item) != names:
                return f"item without every field: {item!r}"
            for f in q.fields:
                problem = value_problem(f, item[f.id], today)
                if problem:
                    return f"{f.id}: {problem}"
        return None
    return f"unknown type {q.type}"


def answer_problems(answers: dict, today: dt.date | None = None) -> list[str]:
    """Return every problem with a stored answer set (empty when each answer fits its question)."""
    today = today or dt.date.today()
    problems = []
    for qid, value in answers.items():
        q = qd.BY_ID.get(qid)
        if q is None:
            problems.append(f"{qid!r}: not a question")
            continue
        problem = value_problem(q, value, today)
        if problem:
            problems.append(f"{qid}: {problem}")
    return problems
