"""One FlaskForm per questionnaire page, built from the data dictionary.

No question is written here by hand: every field comes from ``screening.questions``.
``read_page`` turns a posted form into stored answers (the engine's vocabulary) and
decides, with the dictionary's follow-up conditions, which answers are required.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from .. import questions as qd
from ..display import format_date
from ..rules import asked_ids, implausible_dates

MAX_ITEMS = 10
TEXT_LIMITS = {"name": 120, "email": 254, "tel": 30}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{7,20}$")


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _date_form(q: qd.Question) -> type[Form]:
    attrs = {
        "day": StringField(lazy_gettext("Day"), validators=[Optional(), Length(max=2)]),
        "month": StringField(lazy_gettext("Month"), validators=[Optional(), Length(max=2)]),
        "year": StringField(lazy_gettext("Year"), validators=[Optional(), Length(max=4)]),
    }
    if q.unknown_allowed:
        attrs["unknown"] = BooleanField(lazy_gettext("I don't know"))
    return type(f"DateParts_{q.id}", (Form,), attrs)


def _choices(q: qd.Question) -> list[SelectChoice]:
    return [SelectChoice(c.code, lazy_gettext(c.label)) for c in q.choices]


def _field(q: qd.Question, in_group: bool = False):
    """Return the WTForms field for one question."""
    label = lazy_gettext(q.label)
    if q.type in (qd.YES_NO, qd.YES_NO_UNSURE) or (q.type == qd.SINGLE and not in_group):
        return RadioField(label, choices=_choices(q), validators=[Optional()])
    if q.type == qd.SINGLE:
        return SelectField(label, choices=[SelectChoice("", lazy_gettext("Choose one"))] + _choices(q), validators=[Optional()])
    if q.type in (qd.MULTI, qd.AREAS):
        return MultiCheckboxField(label, choices=_choices(q), validators=[Optional()])
    if q.type == qd.DATE:
        return FormField(_date_form(q), label=label)
    if q.type == qd.TEXT:
        return StringField(label, validators=[Optional(), Length(max=TEXT_LIMITS.get(q.text_kind, 1000))])
    if q.type == qd.GROUP:
        item = type(f"Item_{q.id}", (Form,), {f.id: _field(f, in_group=True) for f in q.fields})
        return FieldList(FormField(item), label=label, min_entries=1, max_entries=MAX_ITEMS)
    raise AssertionError(q.type)


_FORMS: dict[str, type[FlaskForm]] = {}


def page_form_class(page: qd.Page) -> type[FlaskForm]:
    """Return the FlaskForm class for ``page`` (built once from the dictionary)."""
    if page.id not in _FORMS:
        fields = {q.id: _field(q) for q in qd.page_questions(page)}
        _FORMS[page.id] = type(f"Page_{page.id.replace('-', '_')}", (FlaskForm,), fields)
    return _FORMS[page.id]


# -- stored answers <-> form data ---------------------------------------------------


def _date_to_parts(value: Any) -> dict:
    if value == qd.UNKNOWN:
        return {"unknown": True}
    if not value:
        return {}
    parts = value.split("-")
    out = {"year": parts[0], "month": str(int(parts[1]))}
    if len(parts) == 3:
        out["day"] = str(int(parts[2]))
    return out


def form_data(page: qd.Page, answers: dict) -> dict:
    """Return stored answers in the shape the page's form expects."""
    data: dict[str, Any] = {}
    for q in qd.page_questions(page):
        value = answers.get(q.id)
        if value is None:
            continue
        if q.type == qd.DATE:
            data[q.id] = _date_to_parts(value)
        elif q.type == qd.GROUP:
            data[q.id] = [
                {f.id: (_date_to_parts(item.get(f.id)) if f.type == qd.DATE else item.get(f.id)) for f in q.fields}
                for item in value
            ]
        else:
            data[q.id] = value
    return data


def allowed_names(form: FlaskForm) -> set[str]:
    """Return every form key the page may receive."""
    names = {"csrf_token", "action"}

    def walk(field) -> None:
        if isinstance(field, FieldList):
            for entry in field.entries:
                walk(entry)
        elif isinstance(field, FormField):
            for sub in field.form:
                walk(sub)
        else:
            names.add(field.name)

    for field in form:
        walk(field)
    return names


def unexpected_keys(form: FlaskForm, keys) -> list[str]:
    """Return the posted keys that are not fields of this page."""
    allowed = allowed_names(form)
    out = []
    for key in keys:
        if key in allowed:
            continue
        # Group rows beyond those rendered (a client may add rows) are allowed up to MAX_ITEMS.
        m = re.fullmatch(r"([a-z_0-9]+)-(\d+)-([a-z_]+)(-[a-z]+)?", key)
        if m and m.group(1) in qd.BY_ID and qd.BY_ID[m.group(1)].type == qd.GROUP and int(m.group(2)) < MAX_ITEMS:
            continue
        out.append(key)
    return out


def _read_date(q: qd.Question, parts, today: dt.date) -> tuple[Any, str | None]:
    """Return (stored value or None, error message or None) for a date field."""
    data = parts.data if hasattr(parts, "data") else parts
    day, month, year = (str(data.get(k) or "").strip() for k in ("day", "month", "year"))
    if data.get("unknown"):
        if day or month or year:
            return None, _("Enter %(s)s or tick ‘I don't know’, not both", s=subject(q))
        return qd.UNKNOWN, None
    if not (day or month or year):
        return None, None
    if not year or not month or (not day and not q.month_allowed):
        missing = [n for n, v in ((_("day"), day), (_("month"), month), (_("year"), year)) if not v]
        if not day and q.month_allowed:
            missing = [m for m in missing if m != _("day")]
        return None, _("%(S)s must include a %(parts)s", S=subject_first(q), parts=_(" and ").join(missing))
    if not (year.isdigit() and month.isdigit() and (not day or day.isdigit())) or len(year) != 4:
        return None, _("%(S)s must be a real date, in numbers with a 4-digit year", S=subject_first(q))
    try:
        value = dt.date(int(year), int(month), int(day) if day else 1)
    except ValueError:
        return None, _("%(S)s must be a real date", S=subject_first(q))
    if value.year < 1900:
        return None, _("%(S)s must be in 1900 or later", S=subject_first(q))
    check = value
    if not day:  # month only: the last day of the month, as the engine reads it
        nxt = dt.date(value.year + (value.month == 12), value.month % 12 + 1, 1)
        check = nxt - dt.timedelta(days=1)
    if q.dates == "past" and value > today:
        return None, _("%(S)s must be today or in the past", S=subject_first(q))
    if q.dates == "future" and check < today:
        if q.id != "appointment_date":  # a planned last dose of a course still being taken
            return None, _("The last dose of a course you are still taking cannot be in the past. If you have "
                           "stopped, change your answer to ‘Are you still taking…’ to No")
        return None, _("%(S)s must be today or in the future", S=subject_first(q))
    if q.dates == "future" and value > today + dt.timedelta(days=730):
        return None, _("%(S)s must be within the next 2 years", S=subject_first(q))
    if q.id == "dob" and value.year < today.year - 120:
        return None, _("%(S)s must be a real date of birth", S=subject_first(q))
    return (value.isoformat() if day else f"{value:%Y-%m}"), None


def subject(q: qd.Question) -> str:
    """Return what question ``q`` is about, for a message: its subject in the dictionary ("your date of birth")."""
    return _(q.subject) if q.subject else _(q.label)


def subject_first(q: qd.Question) -> str:
    """Return the subject to start a sentence with: "Date of birth", "The date of your last dose"."""
    text = subject(q)
    text = text[len("your "):] if text.startswith("your ") else text
    return text[:1].upper() + text[1:]


def _missing_message(q: qd.Question) -> str:
    """Say what to do about an unanswered question, naming it (GOV.UK's style), from the dictionary."""
    s = subject(q)
    if q.type in (qd.YES_NO, qd.YES_NO_UNSURE):
        return _("Select yes if %(s)s", s=s)
    if q.type == qd.MULTI and qd.NONE in q.choice_codes():
        return _("Select %(s)s, or ‘None of these’", s=s)
    if q.type in (qd.SINGLE, qd.MULTI, qd.AREAS):
        return _("Select %(s)s", s=s)
    if q.type == qd.DATE:
        return _("Enter %(s)s", s=s) if not q.unknown_allowed else _("Enter %(s)s, or tick ‘I don't know’", s=s)
    if q.type == qd.GROUP:
        return _("Give the details of %(s)s", s=s)
    return _("Enter %(s)s", s=s)


def _read_value(q: qd.Question, field, today: dt.date) -> tuple[Any, str | None]:
    """Return (stored value or None, error or None) for one non-group field."""
    if q.type == qd.DATE:
        return _read_date(q, field.form.data if isinstance(field, FormField) else field, today)
    if field.errors:
        if q.type == qd.TEXT:
            return None, _("%(S)s must be %(n)s characters or fewer", S=subject_first(q),
                           n=TEXT_LIMITS.get(q.text_kind, 1000))
        return None, _("Select one of the options shown")
    data = field.data
    chosen = data if isinstance(data, list) else [data] if data else []
    if q.choices and any(code not in q.choice_codes() for code in chosen):
        # WTForms' Optional() clears the "not a valid choice" error of a blank-looking value such as "  ".
        return None, _("Select one of the options shown")
    if q.type in (qd.MULTI, qd.AREAS):
        data = list(dict.fromkeys(data or []))
        if qd.NONE in data and len(data) > 1:
            return None, _("Select ‘None of these’ on its own, or only the ones that apply")
        return (data or None), None
    if q.type == qd.TEXT:
        text = clean_text(data)
        if not text:
            return None, None
        if q.text_kind == "email" and not _EMAIL.match(text):
            return None, _("Enter an email address in the correct format, like name@example.com")
        if q.text_kind == "tel" and not _PHONE.match(text):
            return None, _("Enter a phone number, like 07700 900 982 or +44 7700 900 982")
        return text, None
    return (data or None), None


# Bidirectional controls (embeddings, overrides, isolates, marks): a right-to-left override in a name makes
# "Ann" print as another string on the record, the PDF and the desk list. The letters of right-to-left
# scripts need none of them to display correctly.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(text: str | None) -> str:
    """Return typed text with its spaces collapsed and control characters (NUL, escape codes) removed.

    No one types a control character; one pasted or posted by a script is dropped rather than stored and
    printed in the record. The same goes for the bidirectional controls (``BIDI_CONTROLS``).
    """
    return " ".join("".join(c for c in text or "" if c.isspace() or (unicodedata.category(c) not in ("Cc", "Cs")
                                                                      and c not in BIDI_CONTROLS)).split())


_QUOTES = "'\"‘’‚‛“”„‟ʼ`´′″"
_DASHES = "-‐‑‒–—―"


def name_key(name: str) -> str:
    """Return a name as people read it: no accents, case, apostrophes, quotes or full stops; hyphens as
    spaces; spaces collapsed. "Siobhán O’Neill" and "siobhan o'neill" have the same key."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = "".join("" if c in _QUOTES or c == "." else " " if c in _DASHES else c for c in text)
    return " ".join(text.split())


def same_name(typed: str, given: str) -> bool:
    """Whether the typed signature is the name given on the first page, as people read names."""
    return bool(name_key(typed)) and name_key(typed) == name_key(given)


def _read_group(q: qd.Question, field: FieldList, today: dt.date) -> tuple[list | None, dict[str, str], list]:
    """Return (items, errors by field id, the form entry of each item)."""
    items, errors, entries = [], {}, []
    for n, entry in enumerate(field.entries):
        sub = entry.form
        item, item_errors = {}, {}
        for f in q.fields:
            value, error = _read_value(f, sub[f.id], today)
            if error:
                item_errors[sub[f.id].id] = error
            elif value is not None:
                item[f.id] = value
        blank = not item and not item_errors
        if blank:
            continue
        for f in q.fields:
            key = sub[f.id].id
            if f.id not in item and key not in item_errors:
                item_errors[key] = _missing_message(f)
        errors.update(item_errors)
        if not item_errors:
            items.append(item)
            entries.append(entry)
    return (items or None), errors, entries


def add_group_row(form: FlaskForm, action: str) -> bool:
    """Handle an "add-<group>" button: give that repeatable group one more row (up to its limit). Return whether
    ``action`` was such a button (the page is then shown again, nothing saved)."""
    if not action.startswith("add-"):
        return False
    group = action[4:]
    if group in form._fields and qd.BY_ID.get(group) and qd.BY_ID[group].type == qd.GROUP:
        if len(form[group].entries) < form[group].max_entries:
            form[group].append_entry()
    return True


def read_page(form: FlaskForm, page: qd.Page, draft_answers: dict, today: dt.date) -> tuple[dict, dict[str, str]]:
    """Return (answers of this page, errors by field id) for a posted, CSRF-checked form."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    questions = qd.page_questions(page)
    group_entries: dict[str, list] = {}
    for q in questions:
        field = form[q.id]
        if q.type == qd.GROUP:
            value, group_errors, group_entries[q.id] = _read_group(q, field, today)
            errors.update(group_errors)
        else:
            value, error = _read_value(q, field, today)
            if error:
                errors[_anchor(q, field)] = error
        if value is not None:
            answers[q.id] = value
    merged = {**{k: v for k, v in draft_answers.items()}, **answers}
    for q in questions:
        if q.id not in answers:
            merged.pop(q.id, None)
    asked = set(asked_ids(merged))
    for q in questions:
        if q.id not in asked:
            # A follow-up whose parent does not need it: any error in it is moot.
            errors = {k: v for k, v in errors.items() if not _belongs(k, q)}
            continue
        if q.required and q.id not in answers and not any(_belongs(k, q) for k in errors):
            errors[_anchor(q, form[q.id])] = _missing_message(q)
    for key, message in implausible_errors(form, page, merged, today, group_entries).items():
        errors.setdefault(key, message)
    ordered = {k: v for q in questions for k, v in errors.items() if _belongs(k, q)}
    return answers, ordered


def implausible_errors(form: FlaskForm, page: qd.Page, answers: dict, today: dt.date,
                       group_entries: dict[str, list] | None = None) -> dict[str, str]:
    """Return messages, by field id, for this page's dates that cannot be true beside the other answers
    (an event before the date of birth or after the appointment): the engine's own check."""
    on_page = {q.id for q in qd.page_questions(page)} & set(asked_ids(answers))  # a follow-up not asked is moot
    out: dict[str, str] = {}
    for qid, index, kind, _value in implausible_dates(answers, today):
        if qid not in on_page or kind in ("appointment_past", "after_answered", "planned_end_past"):
            continue  # those are the date's own checks (today or before / after), already made
        field = form[qid]
        if index is None:
            key = field.id
        else:
            entries = (group_entries or {}).get(qid) or field.entries
            if index >= len(entries):
                continue
            key = entries[index].form["date"].id
        if kind == "before_birth":
            out[key] = _("This date is before your date of birth (%(dob)s). Check the year",
                         dob=format_date(answers.get("dob")))
        else:
            out[key] = _("This date is after your appointment (%(day)s). Check the date, or the date of your "
                         "appointment", day=format_date(answers.get("appointment_date")))
    return out


def _anchor(q: qd.Question, field) -> str:
    """Return the key an error of question ``q`` is filed under: the field's id."""
    if q.type == qd.GROUP:
        return field.entries[0].form[q.fields[0].id].id
    return field.id


def error_href(form: FlaskForm, key: str) -> str:
    """Return the id of the element an error summary link should focus."""
    field = _find(form, key)
    if isinstance(field, FormField):  # a date: its first box
        return f"{key}-day" if "day" in field.form._fields else f"{key}-month"
    if isinstance(field, (RadioField, SelectMultipleField)):
        return f"{key}-0"
    return key


def _find(form, key: str):
    for field in form:
        if field.id == key:
            return field
        if isinstance(field, FieldList):
            for entry in field.entries:
                found = _find(entry.form, key)
                if found is not None:
                    return found
    return None


def _belongs(key: str, q: qd.Question) -> bool:
    return key == q.id or key.startswith(q.id + "-")
