"""The data dictionary: every question the screening asks, in one place.

This module is the only list of questions in the product. The web form, the rules
check, the PDF and exports all read it. It is pure data (no Flask, no database).

Conditions (when a follow-up is asked) use the same condition language as
``rules.yaml``: ``{"question": id, "op": ..., "value": ...}`` combined with
``all`` / ``any`` / ``not``. They are compiled by :mod:`screening.rules`.

Client-facing text is marked with ``N_`` so that Babel can extract it; it is
translated where it is shown, not here.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping


def N_(text: str) -> str:
    """Mark a string for translation without translating it now."""
    return text


# Question types.
YES_NO = "yes_no"
YES_NO_UNSURE = "yes_no_unsure"
SINGLE = "single"
MULTI = "multi"
AREAS = "areas"  # multi-select over the treatment-area vocabulary
DATE = "date"
TEXT = "text"
GROUP = "group"  # repeatable group of sub-fields

TYPES = (YES_NO, YES_NO_UNSURE, SINGLE, MULTI, AREAS, DATE, TEXT, GROUP)

UNKNOWN = "unknown"  # the answer code of a date question answered "I don't know"
NONE = "none"  # the exclusive "none of these" code of a multi-select


@dataclass(frozen=True)
class Choice:
    """One answer option: a stable code and the words a client reads."""

    code: str
    label: str
    # A truthful answer that does not settle the fact: "I'm not sure", "another ...", "somewhere else".
    # The engine never lets such an answer make a rule vanish (clinical specification v2, 0.1).
    vague: bool = False


@dataclass(frozen=True)
class Question:
    """One question (or one sub-field of a repeatable group)."""

    id: str
    type: str
    label: str
    section: str = ""
    hint: str = ""
    why: str = ""
    choices: tuple[Choice, ...] = ()
    required: bool = True
    asked_when: Mapping[str, Any] | None = None
    # Dates: may the client give only a month ("2026-03")? May they say "I don't know"?
    month_allowed: bool = False
    unknown_allowed: bool = False
    # Dates: which dates make sense: "past" (today or before), "future" (today or after) or "any".
    dates: str = "past"
    # Dates: one everyone knows to the day (date of birth, the appointment); any other date that feeds a
    # deferral window must offer "I don't know" (check-rules refuses a window fed only by a guess).
    exact: bool = False
    # Asks about now, today or the last 28 days or less: true on the day it was answered, not
    # necessarily on the appointment day (clinical specification v2, 0.4). Follow-ups inherit it.
    about_now: bool = False
    # Text: the kind of text (``email``, ``tel``, ``name`` or plain).
    text_kind: str = ""
    # Groups: the sub-fields of each item.
    fields: tuple["Question", ...] = ()
    # Gates that ask "in the last N days/months": (N, unit). Rules must not look further back.
    lookback: tuple[int, str] | None = None
    # Identity and free text are not safety answers; everything else is.
    is_safety: bool = True
    # What the question is about, short, for error messages (see ``messages``): a yes/no question's
    # "yes" case ("you are pregnant or could be"), or what to select or enter ("your date of birth").
    subject: str = ""

    def choice_codes(self) -> tuple[str, ...]:
        """Return the stable codes of this question's choices."""
        return tuple(c.code for c in self.choices)

    def field(self, name: str) -> "Question":
        """Return the sub-field ``name`` of a group question."""
        for f in self.fields:
            if f.id == name:
                return f
        raise KeyError(name)


@dataclass(frozen=True)
class Section:
    """A topic of the questionnaire, shown as one or more pages."""

    id: str
    title: str
    intro: str = ""


# ---------------------------------------------------------------------------
# Vocabularies
# ---------------------------------------------------------------------------

VARIANTS = ("standard", "rf", "prp")
VARIANT_UNKNOWN = "unknown"

FACIAL_AREAS = ("forehead", "periorbital", "nose", "cheeks", "perioral", "chin_jawline")
BODY_AREAS = ("neck", "decolletage", "scalp", "hands", "arms", "abdomen", "back", "thighs_buttocks")
FULL_FACE = "full_face"
ELSEWHERE = "elsewhere"
# Places clients name next to the treatable areas (spec v2, 0.1). Not treatment areas themselves; a
# condition there counts as being in the adjoining area(s). Hairline also adjoins the scalp and the
# breasts or chest wall the upper chest: conservative additions to the specification's list.
NEAR_AREAS = ("eyelids", "ears", "hairline", "breasts_chest_wall", "lower_legs", "feet", "genitals")
ADJOINS = {
    "eyelids": ("periorbital",),
    "ears": ("cheeks",),
    "hairline": ("forehead", "scalp"),
    "breasts_chest_wall": ("decolletage",),
}

AREA_LABELS = {
    "full_face": N_("Whole face"),
    "forehead": N_("Forehead"),
    "periorbital": N_("Around the eyes (not the eyelids)"),
    "nose": N_("Nose"),
    "cheeks": N_("Cheeks"),
    "perioral": N_("Lips and around the mouth"),
    "chin_jawline": N_("Chin and jawline"),
    "neck": N_("Neck"),
    "decolletage": N_("Upper chest"),
    "scalp": N_("Scalp"),
    "hands": N_("Hands"),
    "arms": N_("Arms"),
    "abdomen": N_("Tummy"),
    "back": N_("Back"),
    "thighs_buttocks": N_("Thighs and buttocks"),
    "eyelids": N_("Eyelids"),
    "ears": N_("Ears"),
    "hairline": N_("Hairline"),
    "breasts_chest_wall": N_("Breasts or chest wall"),
    "lower_legs": N_("Lower legs"),
    "feet": N_("Feet"),
    "genitals": N_("Genitals"),
    "elsewhere": N_("Somewhere else on the body"),
}

TREATMENT_AREA_CHOICES = tuple(
    Choice(code, AREA_LABELS[code]) for code in (FULL_FACE, *FACIAL_AREAS, *BODY_AREAS)
)
LOCATION_CHOICES = (
    tuple(Choice(code, AREA_LABELS[code]) for code in (FULL_FACE, *FACIAL_AREAS, "eyelids", "ears", "hairline",
                                                         "neck", "decolletage", "breasts_chest_wall", "scalp",
                                                         "hands", "arms", "abdomen", "back", "thighs_buttocks",
                                                         "lower_legs", "feet", "genitals"))
    + (Choice(ELSEWHERE, AREA_LABELS[ELSEWHERE], vague=True),)
)


def expand_areas(codes) -> frozenset[str]:
    """Return the concrete areas of ``codes``: ``full_face`` stands for all six facial areas, and a place
    next to a treatable area (eyelids, ears, hairline...) also counts as that area."""
    out = set()
    for code in codes:
        if code == FULL_FACE:
            out.update(FACIAL_AREAS)
        else:
            out.add(code)
            out.update(ADJOINS.get(code, ()))
    return frozenset(out)


YNU = (Choice("yes", N_("Yes")), Choice("no", N_("No")), Choice("unsure", N_("I'm not sure"), vague=True))
YN = (Choice("yes", N_("Yes")), Choice("no", N_("No")))


def _when(question: str, value: str = "yes", op: str = "eq") -> dict:
    return {"question": question, "op": op, "value": value}


def _yes(question: str) -> dict:
    return _when(question, "yes")


# ---------------------------------------------------------------------------
# Sections, in the order a client meets them
# ---------------------------------------------------------------------------

SECTIONS = (
    Section("about_you", N_("About you")),
    Section("appointment", N_("Your appointment")),
    Section("pregnancy", N_("Pregnancy and breastfeeding")),
    Section("medicines", N_("Medicines and skin products")),
    Section("blood_and_infection", N_("Blood, immunity and infections")),
    Section("cancer", N_("Cancer")),
    Section("conditions", N_("Diabetes and long-term conditions")),
    Section("skin_history", N_("Your skin's history")),
    Section("skin_today", N_("How you and your skin are today")),
    Section("implants", N_("Implants, metal and fillers")),
    Section("treatments", N_("Recent treatments")),
    Section("allergies", N_("Allergies and reactions")),
)

# ---------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------


def _ynu(id, section, label, why="", hint="", asked_when=None, choices=YNU, **kw) -> Question:
    return Question(
        id=id,
        type=YES_NO_UNSURE if choices is YNU else YES_NO,
        section=section,
        label=label,
        why=why,
        hint=hint,
        choices=choices,
        asked_when=asked_when,
        **kw,
    )


def _location(id, section, parent, label, **kw) -> Question:
    return Question(
        id=id,
        type=AREAS,
        section=section,
        label=label,
        hint=N_("Choose every place that applies."),
        choices=LOCATION_CHOICES,
        asked_when=_yes(parent),
        **kw,
    )


def _details(id, section, parent, label, value="yes", subject="") -> Question:
    return Question(
        id=id,
        type=TEXT,
        section=section,
        label=label,
        required=False,
        asked_when=_when(parent, value),
        is_safety=False,
        subject=subject,
    )


DATE_HINT = N_("If you do not remember the day, give the month and year. If you do not know, say so.")


def _event_date(id, section, label, asked_when, hint="", dates="past", **kw) -> Question:
    """A date that feeds a deferral window: a month is enough, and "I don't know" is an answer."""
    return Question(
        id=id,
        type=DATE,
        section=section,
        label=label,
        hint=hint or DATE_HINT,
        asked_when=asked_when,
        month_allowed=True,
        unknown_allowed=True,
        dates=dates,
        **kw,
    )


_TOPICAL_USED = {
    "question": "topical_actives",
    "op": "contains_any",
    "value": ["prescription_retinoid", "retinol", "acid_exfoliant", "benzoyl_peroxide"],
}

_QUESTIONS: list[Question] = [
    # About you ---------------------------------------------------------------
    Question("full_name", TEXT, N_("Full name"), "about_you", text_kind="name", is_safety=False,
             subject=N_("your full name")),
    Question(
        "dob",
        DATE,
        N_("Date of birth"),
        "about_you",
        hint=N_("For example, 27 3 1990"),
        why=N_("We ask because treatment is only for adults."),
        exact=True,
        subject=N_("your date of birth"),
    ),
    Question(
        "email",
        TEXT,
        N_("Email address"),
        "about_you",
        text_kind="email",
        why=N_("The clinic uses it only about this appointment."),
        is_safety=False,
        subject=N_("your email address"),
    ),
    Question(
        "phone",
        TEXT,
        N_("Phone number"),
        "about_you",
        text_kind="tel",
        why=N_("So the clinic can call you if an answer needs checking."),
        is_safety=False,
        subject=N_("your phone number"),
    ),
    # Appointment -------------------------------------------------------------
    Question("appointment_date", DATE, N_("Date of your appointment"), "appointment",
             hint=N_("For example, 15 1 2027"), dates="future", exact=True,
             subject=N_("the date of your appointment")),
    Question(
        "treatment_variant",
        SINGLE,
        N_("Which treatment have you booked?"),
        "appointment",
        choices=(
            Choice("standard", N_("Microneedling (pen, stamp or roller)")),
            Choice("rf", N_("Radiofrequency (RF) microneedling")),
            Choice("prp", N_("Microneedling with PRP (your own blood plasma)")),
            Choice(VARIANT_UNKNOWN, N_("I don't know"), vague=True),
        ),
        why=N_("Some answers matter only for one kind of treatment."),
        subject=N_("which treatment you have booked, or ‘I don't know’"),
    ),
    Question(
        "treatment_areas",
        AREAS,
        N_("Which areas will be treated?"),
        "appointment",
        hint=N_("Choose every area that applies."),
        choices=TREATMENT_AREA_CHOICES,
        subject=N_("the areas that will be treated"),
    ),
    # Pregnancy ---------------------------------------------------------------
    _ynu(
        "pregnant",
        "pregnancy",
        N_("Are you pregnant, or could you be pregnant?"),
        why=N_("We ask because treatment and numbing cream are not used in pregnancy."),
        about_now=True,
        subject=N_("you are pregnant or could be"),
    ),
    _ynu(
        "breastfeeding",
        "pregnancy",
        N_("Are you breastfeeding or expressing milk?"),
        why=N_("We ask because some numbing creams are avoided while breastfeeding."),
        choices=YN,
        about_now=True,
        subject=N_("you are breastfeeding or expressing milk"),
    ),
    # Medicines ---------------------------------------------------------------
    _ynu(
        "isotretinoin_last_12m",
        "medicines",
        N_(
            "In the last 12 months, have you taken isotretinoin tablets "
            "(Roaccutane, Accutane, Absorica, Claravis and others)?"
        ),
        why=N_("We ask because isotretinoin slows skin healing for months after the last dose."),
        lookback=(12, "months"),
        subject=N_("you have taken isotretinoin tablets in the last 12 months"),
    ),
    _ynu(
        "isotretinoin_current",
        "medicines",
        N_("Are you taking isotretinoin now?"),
        asked_when=_yes("isotretinoin_last_12m"),
        about_now=True,
        subject=N_("you are taking isotretinoin now"),
    ),
    _event_date(
        "isotretinoin_last_dose_date",
        "medicines",
        N_("When did you take your last isotretinoin tablet?"),
        _when("isotretinoin_current", "no"),
        subject=N_("the date of your last isotretinoin tablet"),
    ),
    _event_date(
        "isotretinoin_planned_end_date",
        "medicines",
        N_("When will you take the last tablet of this course?"),
        _yes("isotretinoin_current"),
        hint=N_("Your prescriber may have told you. If you do not know, say so."),
        dates="future",
        subject=N_("the date of the last tablet of this course"),
    ),
    Question(
        "topical_actives",
        MULTI,
        N_("In the last 7 days, have you used any of these on your skin?"),
        "medicines",
        hint=N_("Choose all that apply, or 'None of these'."),
        why=N_("We ask because these make skin thinner and more sensitive for a few days."),
        lookback=(7, "days"),
        choices=(
            Choice(
                "prescription_retinoid",
                N_("A prescription retinoid cream or gel (tretinoin, adapalene, Differin, tazarotene, trifarotene)"),
            ),
            Choice("retinol", N_("Retinol or retinal (vitamin A) skincare")),
            Choice("acid_exfoliant", N_("An acid exfoliant or home peel (AHA, BHA, glycolic, lactic or salicylic acid)")),
            Choice("benzoyl_peroxide", N_("Benzoyl peroxide (for example Acnecide, PanOxyl)")),
            Choice(NONE, N_("None of these")),
        ),
        subject=N_("the products you have used in the last 7 days"),
    ),
    Question(
        "topical_actives_location",
        AREAS,
        N_("Where on your body did you use them?"),
        "medicines",
        hint=N_("Choose every place that applies."),
        choices=LOCATION_CHOICES,
        asked_when=_TOPICAL_USED,
        subject=N_("where on your body you used them"),
    ),
    Question(
        "topical_actives_still_using",
        YES_NO,
        N_("Are you still using them?"),
        "medicines",
        choices=YN,
        asked_when=_TOPICAL_USED,
        subject=N_("you are still using them"),
    ),
    _event_date(
        "topical_actives_last_date",
        "medicines",
        N_("When did you last use them?"),
        _when("topical_actives_still_using", "no"),
        hint=N_("For example, 20 11 2026. If you do not know, say so."),
        subject=N_("the date you last used them"),
    ),
    _ynu(
        "anticoagulants",
        "medicines",
        N_(
            "Do you take a blood thinner (anticoagulant), such as warfarin, apixaban (Eliquis), "
            "rivaroxaban (Xarelto), edoxaban, dabigatran (Pradaxa) or heparin injections?"
        ),
        why=N_("We ask because these make bruising and bleeding more likely. Do not stop them."),
        about_now=True,
        subject=N_("you take a blood thinner"),
    ),
    Question(
        "anticoagulants_which",
        MULTI,
        N_("Which one?"),
        "medicines",
        required=False,
        asked_when=_yes("anticoagulants"),
        choices=(
            Choice("warfarin", N_("Warfarin")),
            Choice("apixaban", N_("Apixaban (Eliquis)")),
            Choice("rivaroxaban", N_("Rivaroxaban (Xarelto)")),
            Choice("edoxaban", N_("Edoxaban (Lixiana)")),
            Choice("dabigatran", N_("Dabigatran (Pradaxa)")),
            Choice("heparin", N_("Heparin injections (such as Clexane)")),
            Choice("other", N_("Another one"), vague=True),
        ),
        is_safety=False,
        subject=N_("which blood thinner you take"),
    ),
    _ynu(
        "antiplatelets",
        "medicines",
        N_(
            "Do you take a medicine prescribed to stop blood clots, such as clopidogrel (Plavix), "
            "prasugrel, ticagrelor (Brilique), dipyridamole, or low-dose aspirin for your heart or a stroke?"
        ),
        why=N_("We ask because these make bruising and bleeding more likely. Do not stop them."),
        about_now=True,
        subject=N_("you take a medicine to stop blood clots"),
    ),
    Question(
        "antiplatelets_which",
        MULTI,
        N_("Which one?"),
        "medicines",
        required=False,
        asked_when=_yes("antiplatelets"),
        choices=(
            Choice("clopidogrel", N_("Clopidogrel (Plavix)")),
            Choice("prasugrel", N_("Prasugrel (Efient)")),
            Choice("ticagrelor", N_("Ticagrelor (Brilique)")),
            Choice("dipyridamole", N_("Dipyridamole")),
            Choice("aspirin_low_dose", N_("Low-dose aspirin")),
            Choice("other", N_("Another one"), vague=True),
        ),
        is_safety=False,
        subject=N_("which medicine you take"),
    ),
    _ynu(
        "nsaid_last_7d",
        "medicines",
        N_(
            "In the last 7 days, have you taken an anti-inflammatory painkiller, such as ibuprofen "
            "(Nurofen, Advil), naproxen, diclofenac (Voltarol), mefenamic acid, or aspirin for pain or fever?"
        ),
        hint=N_("Do not count low-dose aspirin prescribed for your heart."),
        why=N_("We ask because these painkillers can affect the blood used for PRP."),
        lookback=(7, "days"),
        subject=N_("you have taken an anti-inflammatory painkiller in the last 7 days"),
    ),
    _ynu(
        "nsaid_still_taking",
        "medicines",
        N_("Are you still taking it?"),
        asked_when=_yes("nsaid_last_7d"),
        choices=YN,
        subject=N_("you are still taking it"),
    ),
    _event_date(
        "nsaid_last_dose_date",
        "medicines",
        N_("When did you take the last dose?"),
        _when("nsaid_still_taking", "no"),
        hint=N_("For example, 20 11 2026. If you do not know, say so."),
        subject=N_("the date of your last painkiller dose"),
    ),
    _ynu(
        "systemic_steroid_last_14d",
        "medicines",
        N_(
            "In the last 14 days, have you taken steroid tablets or had a steroid injection or drip "
            "(for example prednisolone or dexamethasone)?"
        ),
        hint=N_("Do not count steroid creams, inhalers or nose sprays."),
        why=N_("We ask because steroids can affect healing and the blood used for PRP."),
        lookback=(14, "days"),
        subject=N_("you have taken steroid tablets, or had a steroid injection or drip, in the last 14 days"),
    ),
    _ynu(
        "systemic_steroid_current",
        "medicines",
        N_("Are you still taking them?"),
        asked_when=_yes("systemic_steroid_last_14d"),
        subject=N_("you are still taking them"),
    ),
    _event_date(
        "systemic_steroid_last_dose_date",
        "medicines",
        N_("When did you take the last dose?"),
        _when("systemic_steroid_current", "no"),
        hint=N_("For example, 20 11 2026. If you do not know, say so."),
        subject=N_("the date of your last steroid dose"),
    ),
    _event_date(
        "systemic_steroid_planned_end_date",
        "medicines",
        N_("When will you take the last dose of this course?"),
        _yes("systemic_steroid_current"),
        hint=N_("Your prescriber may have told you. If you take them long term with no end date, "
                "or do not know, say so."),
        dates="future",
        subject=N_("the date of the last steroid dose of this course"),
    ),
    _ynu(
        "immunosuppressive_meds",
        "medicines",
        N_(
            "Do you take a medicine that weakens the immune system, such as long-term steroid tablets, "
            "methotrexate, azathioprine, mycophenolate, ciclosporin, tacrolimus tablets, a biologic "
            "injection (such as Humira) or a JAK inhibitor?"
        ),
        why=N_("We ask because these raise the risk of infection after treatment."),
        about_now=True,
        subject=N_("you take a medicine that weakens the immune system"),
    ),
    _details("immunosuppressive_meds_details", "medicines", "immunosuppressive_meds", N_("Which medicine?"),
             subject=N_("which medicine")),
    # Blood and infection -------------------------------------------------------
    _ynu(
        "bleeding_disorder",
        "blood_and_infection",
        N_(
            "Do you have a bleeding or clotting disorder, such as haemophilia, von Willebrand disease, "
            "a low platelet count (ITP) or a clotting problem from liver disease?"
        ),
        why=N_("We ask because microneedling causes small amounts of bleeding."),
        subject=N_("you have a bleeding or clotting disorder"),
    ),
    _details("bleeding_disorder_details", "blood_and_infection", "bleeding_disorder", N_("Which disorder?"),
             subject=N_("which disorder")),
    _ynu(
        "fainting_with_blood_tests",
        "blood_and_infection",
        N_("Do you faint or feel faint at blood tests or needles?"),
        why=N_("We ask because PRP treatment needs a blood sample."),
        subject=N_("you faint or feel faint at blood tests or needles"),
    ),
    _ynu(
        "anaemia",
        "blood_and_infection",
        N_("Have you been told you have anaemia (low iron or low blood count), or are you being treated for it?"),
        subject=N_("you have been told you have anaemia"),
    ),
    _ynu("low_blood_pressure", "blood_and_infection", N_("Do you have very low blood pressure?"),
         subject=N_("you have very low blood pressure")),
    _ynu(
        "difficult_venous_access",
        "blood_and_infection",
        N_("Have nurses often found it very hard to take blood from you?"),
        subject=N_("nurses often find it very hard to take blood from you"),
    ),
    _ynu(
        "blood_borne_virus",
        "blood_and_infection",
        N_("Are you living with HIV, hepatitis B or hepatitis C?"),
        why=N_(
            "We ask so the practitioner can plan your care. It is not on its own a reason to refuse treatment."
        ),
        subject=N_("you are living with HIV, hepatitis B or hepatitis C"),
    ),
    _details(
        "blood_borne_virus_details",
        "blood_and_infection",
        "blood_borne_virus",
        N_("Anything the practitioner should know (for example, is your viral load undetectable)?"),
        subject=N_("anything the practitioner should know"),
    ),
    _ynu(
        "immunosuppressive_condition",
        "blood_and_infection",
        N_(
            "Do you have a condition that weakens your immune system, such as an organ transplant, "
            "an immune deficiency, or HIV that is not controlled?"
        ),
        subject=N_("you have a condition that weakens your immune system"),
    ),
    # Cancer ------------------------------------------------------------------
    _ynu(
        "cancer_treatment_current_or_planned",
        "cancer",
        N_(
            "Are you having chemotherapy, radiotherapy, immunotherapy or targeted cancer treatment now, "
            "or are you due to start it in the next 4 weeks?"
        ),
        hint=N_("Do not count treatment of a basal cell or squamous cell skin cancer that has not spread: "
                "we ask about skin cancers later."),
        why=N_("We ask because cancer treatment affects healing and infection risk."),
        about_now=True,
        subject=N_("you are having cancer treatment now, or are due to start it in the next 4 weeks"),
    ),
    _ynu(
        "cancer_active_untreated",
        "cancer",
        N_("Do you have a cancer that is active or not yet treated?"),
        hint=N_("Do not count a basal cell or squamous cell skin cancer that has not spread, wherever it is: "
                "we ask about skin cancers later."),
                subject=N_("you have a cancer that is active or not yet treated"),
    ),
    _ynu(
        "cancer_treatment_last_12m",
        "cancer",
        N_("In the last 12 months, did you finish chemotherapy, radiotherapy, immunotherapy or targeted cancer treatment?"),
        lookback=(12, "months"),
        subject=N_("you finished cancer treatment in the last 12 months"),
    ),
    _event_date(
        "cancer_treatment_end_date",
        "cancer",
        N_("When did that treatment finish?"),
        _yes("cancer_treatment_last_12m"),
        subject=N_("the date your cancer treatment finished"),
    ),
    _ynu(
        "cancer_history",
        "cancer",
        N_("Have you ever had cancer, including a blood cancer such as leukaemia, lymphoma or myeloma?"),
        hint=N_("Do not count a fully treated basal cell or squamous cell skin cancer."),
        subject=N_("you have ever had cancer"),
    ),
    _details("cancer_history_details", "cancer", "cancer_history", N_("What type, and in which year?"),
             subject=N_("the type of cancer and the year")),
    _ynu("radiotherapy_ever", "cancer", N_("Have you ever had radiotherapy?"),
         subject=N_("you have ever had radiotherapy")),
    _location(
        "radiotherapy_sites",
        "cancer",
        "radiotherapy_ever",
        N_("Where on your body was the radiotherapy given?"),
        subject=N_("where the radiotherapy was given"),
    ),
    # Long-term conditions ------------------------------------------------------
    _ynu(
        "diabetes",
        "conditions",
        N_("Do you have diabetes (any type)?"),
        why=N_("We ask because diabetes can slow healing and raise the risk of infection."),
        subject=N_("you have diabetes"),
    ),
    Question(
        "diabetes_control",
        SINGLE,
        N_("What has your doctor or nurse said about your diabetes control?"),
        "conditions",
        asked_when=_yes("diabetes"),
        choices=(
            Choice("well_controlled", N_("It is well controlled")),
            Choice("poorly_controlled", N_("It is poorly controlled")),
            Choice("not_sure", N_("I'm not sure"), vague=True),
        ),
        subject=N_("what your doctor or nurse has said about your diabetes control"),
    ),
    _ynu(
        "non_healing_wound",
        "conditions",
        N_("Do you have a wound or ulcer that is not healing?"),
        asked_when=_yes("diabetes"),
        about_now=True,
        subject=N_("you have a wound or ulcer that is not healing"),
    ),
    _ynu(
        "diabetes_admission_6m",
        "conditions",
        N_("In the last 6 months, have you been admitted to hospital because your sugar was too high or too low?"),
        asked_when=_yes("diabetes"),
        subject=N_("you have been admitted to hospital for high or low sugar in the last 6 months"),
    ),
    _ynu(
        "scleroderma_or_morphoea",
        "conditions",
        N_("Do you have scleroderma (systemic sclerosis) or morphoea?"),
        why=N_("We ask because these conditions make skin scar and harden."),
        subject=N_("you have scleroderma or morphoea"),
    ),
    _ynu(
        "autoimmune_ctd",
        "conditions",
        N_(
            "Do you have lupus, dermatomyositis, rheumatoid arthritis, Sjögren's syndrome, "
            "or another connective tissue disease?"
        ),
        subject=N_("you have lupus, rheumatoid arthritis or another connective tissue disease"),
    ),
    _details("autoimmune_ctd_details", "conditions", "autoimmune_ctd", N_("Which condition, and what treatment?"),
             subject=N_("the condition and its treatment")),
    # Skin history --------------------------------------------------------------
    _ynu("psoriasis", "skin_history", N_("Have you ever had psoriasis?"),
         why=N_("We ask because some skin conditions can appear where the skin is injured."),
         subject=N_("you have ever had psoriasis")),
    _ynu("lichen_planus", "skin_history", N_("Have you ever had lichen planus?"),
         subject=N_("you have ever had lichen planus")),
    _ynu("vitiligo", "skin_history", N_("Have you ever had vitiligo (white patches)?"),
         subject=N_("you have ever had vitiligo")),
    _ynu(
        "vitiligo_active_12m",
        "skin_history",
        N_("In the last 12 months, has a white patch appeared, grown, or appeared where your skin was hurt?"),
        asked_when=_yes("vitiligo"),
        lookback=(12, "months"),
        subject=N_("a white patch has appeared or grown in the last 12 months"),
    ),
    _event_date(
        "vitiligo_last_activity_date",
        "skin_history",
        N_("When did that last happen?"),
        _yes("vitiligo_active_12m"),
        subject=N_("the date a white patch last appeared or grew"),
    ),
    _ynu(
        "keloid_history",
        "skin_history",
        N_("Have you ever had a keloid scar (a raised scar that grows bigger than the original wound)?"),
        why=N_("We ask because needling can cause keloid scars."),
        subject=N_("you have ever had a keloid scar"),
    ),
    _ynu(
        "hypertrophic_scar_history",
        "skin_history",
        N_("Do your scars tend to be raised and thick?"),
        subject=N_("your scars tend to be raised and thick"),
    ),
    _ynu(
        "poor_wound_healing",
        "skin_history",
        N_("Do cuts and wounds heal slowly or badly for you, or do you have an ulcer that is slow to heal "
           "(for example a diabetic foot ulcer)?"),
           subject=N_("cuts and wounds heal slowly or badly for you"),
    ),
    Question(
        "fitzpatrick",
        SINGLE,
        N_("What happens to your skin in strong sun without sunscreen?"),
        "skin_history",
        why=N_("We ask because some skin types are more likely to get dark marks after treatment."),
        choices=(
            Choice("type_1", N_("Always burns, never tans")),
            Choice("type_2", N_("Usually burns, tans a little")),
            Choice("type_3", N_("Sometimes burns, tans gradually")),
            Choice("type_4", N_("Rarely burns, tans easily")),
            Choice("type_5", N_("Very rarely burns, tans very easily")),
            Choice("type_6", N_("Never burns")),
            Choice("not_sure", N_("I'm not sure"), vague=True),
        ),
        subject=N_("what happens to your skin in strong sun"),
    ),
    _ynu(
        "pih_history",
        "skin_history",
        N_("Have you had dark marks that stayed after a spot, rash, burn or treatment?"),
        subject=N_("you have had dark marks that stayed after a spot, rash, burn or treatment"),
    ),
    _ynu("melasma", "skin_history", N_("Do you have melasma (patches of darker skin, often on the cheeks or lip)?"),
         subject=N_("you have melasma")),
    _ynu(
        "cold_sore_history",
        "skin_history",
        N_("Have you ever had cold sores (herpes) on your face or lips?"),
        why=N_("We ask because treatment can bring on a cold sore; a tablet beforehand prevents it."),
        subject=N_("you have ever had cold sores"),
    ),
    Question(
        "cold_sore_frequency",
        SINGLE,
        N_("How often do you get them?"),
        "skin_history",
        required=False,
        asked_when=_yes("cold_sore_history"),
        choices=(
            Choice("monthly", N_("Most months")),
            Choice("yearly", N_("A few times a year")),
            Choice("rarely", N_("Once a year or less")),
        ),
        is_safety=False,
        subject=N_("how often you get cold sores"),
    ),
    # Skin today ------------------------------------------------------------------
    _ynu(
        "unwell_today",
        "skin_today",
        N_("Do you have a fever, flu, COVID or another illness at the moment?"),
        about_now=True,
        subject=N_("you have a fever or an illness at the moment"),
    ),
    _ynu(
        "systemic_infection_treatment",
        "skin_today",
        N_("Are you taking antibiotic or antiviral tablets for an infection you have at the moment?"),
        hint=N_("Do not count long-term HIV medicines, hepatitis treatment, or antiviral tablets you take to "
                "prevent cold sores."),
        about_now=True,
        subject=N_("you are taking antibiotic or antiviral tablets for an infection you have now"),
    ),
    _ynu(
        "cold_sore_now",
        "skin_today",
        N_("Do you have a cold sore now, or the tingling that comes before one?"),
        about_now=True,
        subject=N_("you have a cold sore, or its tingling, now"),
    ),
    _ynu(
        "skin_infection_now",
        "skin_today",
        N_(
            "Do you have a skin infection now, such as impetigo, boils, infected hair follicles, "
            "cellulitis, ringworm, warts, molluscum or shingles?"
        ),
        about_now=True,
        subject=N_("you have a skin infection now"),
    ),
    _location("skin_infection_location", "skin_today", "skin_infection_now", N_("Where is the infection?"),
              subject=N_("where the infection is")),
    _ynu("open_wound", "skin_today", N_("Do you have an open wound, cut, graze, sore or a skin area that has not healed?"),
         about_now=True,
         subject=N_("you have an open wound, cut, graze or sore")),
    _location("open_wound_location", "skin_today", "open_wound", N_("Where is it?"),
              subject=N_("where the wound is")),
    _ynu(
        "rash_or_eczema_now",
        "skin_today",
        N_("Do you have eczema, dermatitis, a psoriasis patch, or a rash at the moment?"),
        about_now=True,
        subject=N_("you have eczema, dermatitis, a psoriasis patch or a rash at the moment"),
    ),
    _location("rash_or_eczema_location", "skin_today", "rash_or_eczema_now", N_("Where is it?"),
              subject=N_("where the rash is")),
    _ynu("acne_active", "skin_today", N_("Do you have red, sore or pus-filled spots (acne) at the moment?"),
         about_now=True,
         subject=N_("you have red, sore or pus-filled spots at the moment")),
    _location("acne_active_location", "skin_today", "acne_active", N_("Where are the spots?"),
              subject=N_("where the spots are")),
    _ynu("rosacea_active", "skin_today", N_("Do you have a flare of rosacea with spots at the moment?"),
         about_now=True,
         subject=N_("you have a flare of rosacea at the moment")),
    _location("rosacea_active_location", "skin_today", "rosacea_active", N_("Where is the flare?"),
              subject=N_("where the flare is")),
    _ynu(
        "skin_cancer_or_lesion",
        "skin_today",
        N_("Do you have a skin cancer, or a new, changing or bleeding mole or spot that a doctor has not checked?"),
        why=N_("We ask because a mole that has changed must be checked before the skin is treated."),
        about_now=True,
        subject=N_("you have a skin cancer, or a new, changing or bleeding mole or spot"),
    ),
    _location("skin_cancer_or_lesion_location", "skin_today", "skin_cancer_or_lesion", N_("Where is it?"),
              subject=N_("where the skin cancer or mole is")),
    _ynu(
        "sun_exposure_14d",
        "skin_today",
        N_("In the last 14 days, have you had sunburn, used a sunbed, or tanned on purpose?"),
        lookback=(14, "days"),
        subject=N_("you have had sunburn, used a sunbed or tanned in the last 14 days"),
    ),
    _event_date(
        "sun_exposure_date",
        "skin_today",
        N_("When was the most recent time?"),
        _yes("sun_exposure_14d"),
        hint=N_("For example, 20 11 2026. If you do not know, say so."),
        subject=N_("the date of the most recent sunburn, sunbed or tanning"),
    ),
    _location("sun_exposure_location", "skin_today", "sun_exposure_14d", N_("Which parts of your body?"),
              subject=N_("which parts of your body were sunburnt or tanned")),
    # Implants ----------------------------------------------------------------------
    _ynu(
        "implanted_device",
        "implants",
        N_(
            "Do you have an electronic device inside your body, such as a pacemaker, defibrillator (ICD), "
            "heart monitor, nerve stimulator, cochlear implant, or a drug or insulin pump?"
        ),
        why=N_("We ask because radiofrequency energy can interfere with these devices."),
        subject=N_("you have an electronic device inside your body"),
    ),
    _details("implanted_device_details", "implants", "implanted_device", N_("What kind of device?"),
             subject=N_("the kind of device")),
    _ynu(
        "metal_implants",
        "implants",
        N_("Do you have metal in your body, such as plates, screws, wires, mesh, clips, stents or a joint replacement?"),
        hint=N_("Do not count dental fillings, crowns, dental implants or braces."),
        subject=N_("you have metal in your body"),
    ),
    _location("metal_implants_location", "implants", "metal_implants", N_("Where is the metal?"),
              subject=N_("where the metal is")),
    _ynu("gold_threads", "implants", N_("Do you have gold threads under your skin?"),
         subject=N_("you have gold threads under your skin")),
    _location("gold_threads_location", "implants", "gold_threads", N_("Where are the gold threads?"),
              subject=N_("where the gold threads are")),
    _ynu("fixed_piercings", "implants", N_("Do you have a piercing that cannot be taken out?"),
         subject=N_("you have a piercing that cannot be taken out")),
    _location("fixed_piercings_location", "implants", "fixed_piercings", N_("Where is the piercing?"),
              subject=N_("where the piercing is")),
    _ynu(
        "permanent_filler",
        "implants",
        N_(
            "Have you ever had a permanent filler (such as silicone, PMMA or polyacrylamide), "
            "or a filler where you do not know what was used?"
        ),
        subject=N_("you have ever had a permanent filler, or a filler where you do not know what was used"),
    ),
    _location("permanent_filler_location", "implants", "permanent_filler", N_("Where was it injected?"),
              subject=N_("where the filler was injected")),
    _ynu("facial_implant", "implants", N_("Do you have a solid implant in your face, such as a chin or cheek implant?"),
         subject=N_("you have a solid implant in your face")),
    _location("facial_implant_location", "implants", "facial_implant", N_("Where is the implant?"),
              subject=N_("where the implant is")),
]


def _group(id, label, gate, item_type_choices=None, extra=(), why="", subject="", noun="") -> Question:
    """A repeatable group; ``noun`` ("injection") names one item in the fields' error messages."""
    fields = []
    if item_type_choices:
        fields.append(Question("type", SINGLE, N_("What was it?"), choices=item_type_choices,
                               subject=f"what the {noun} was"))
    fields.append(
        Question(
            "date",
            DATE,
            N_("When was it?"),
            hint=DATE_HINT,
            month_allowed=True,
            unknown_allowed=True,
            subject=f"the date of the {noun}",
        )
    )
    fields.extend(extra)
    fields.append(
        Question("location", AREAS, N_("Where on your body?"), hint=N_("Choose every place that applies."),
                 choices=LOCATION_CHOICES, subject=f"where on your body the {noun} was")
    )
    return Question(id, GROUP, label, "treatments", fields=tuple(fields), asked_when=_yes(gate), why=why,
                    subject=subject)


# Surgery that is facial by nature counts for every facial booking, whatever place was ticked (spec v2, 0.1).
SURGERY_TYPES = (
    Choice("facelift", N_("Facelift or neck lift")),
    Choice("brow_lift", N_("Brow lift")),
    Choice("blepharoplasty", N_("Eyelid surgery")),
    Choice("rhinoplasty", N_("Nose surgery")),
    Choice("facial_implant_or_fat_transfer", N_("A facial implant, or fat moved into the face")),
    Choice("other_facial_surgery", N_("Other surgery on the face")),
    Choice("caesarean", N_("Caesarean section")),
    Choice("liposuction", N_("Liposuction")),
    Choice("excision", N_("Removal of a mole, cyst or lump")),
    Choice("other", N_("Other surgery, not on the face")),
)
THREAD_LIFT_TYPES = (
    Choice("facial_thread_lift", N_("On the face or jawline")),
    Choice("neck_thread_lift", N_("On the neck")),
    Choice("body_thread_lift", N_("On the body")),
)

_QUESTIONS += [
    _ynu(
        "injectables_12m",
        "treatments",
        N_(
            "In the last 12 months, have you had anti-wrinkle injections (such as Botox), fillers, "
            "skin boosters or mesotherapy?"
        ),
        lookback=(12, "months"),
        subject=N_("you have had anti-wrinkle injections, fillers, skin boosters or mesotherapy in the last 12 months"),
    ),
    _group(
        "injectables",
        N_("Tell us about each injection treatment"),
        "injectables_12m",
        (
            Choice("botulinum_toxin", N_("Anti-wrinkle injections (Botox, Azzalure, Bocouture)")),
            Choice("ha_filler", N_("Hyaluronic acid filler (such as Juvederm, Restylane)")),
            Choice("biostimulator", N_("Collagen-stimulating filler (Sculptra, Radiesse)")),
            Choice("skin_booster", N_("Skin booster (such as Profhilo)")),
            Choice("mesotherapy", N_("Mesotherapy")),
        ),
        why=N_("We ask because the skin needs time to settle after injections."),
        subject=N_("at least one injection treatment"), noun="injection",
    ),
    _ynu(
        "procedures_12m",
        "treatments",
        N_(
            "In the last 12 months, have you had a skin treatment such as a peel, laser, IPL, "
            "microdermabrasion, dermaplaning, waxing or threading?"
        ),
        lookback=(12, "months"),
        subject=N_("you have had a skin treatment such as a peel, laser or waxing in the last 12 months"),
    ),
    _group(
        "recent_procedures",
        N_("Tell us about each skin treatment"),
        "procedures_12m",
        (
            Choice("superficial_peel", N_("Light chemical peel")),
            Choice("microdermabrasion", N_("Microdermabrasion")),
            Choice("dermaplaning", N_("Dermaplaning")),
            Choice("ipl_bbl", N_("IPL or BBL light treatment")),
            Choice("non_ablative_laser", N_("Laser hair removal, vein laser or non-ablative laser")),
            Choice("non_needle_rf", N_("Radiofrequency skin tightening without needles")),
            Choice("waxing", N_("Waxing")),
            Choice("depilatory_cream", N_("Hair removal cream")),
            Choice("electrolysis", N_("Electrolysis")),
            Choice("threading", N_("Threading")),
            Choice("medium_deep_peel", N_("Medium or deep chemical peel")),
            Choice("ablative_laser", N_("Resurfacing laser (CO2 or Erbium), full or fractional")),
            Choice("dermabrasion", N_("Dermabrasion")),
            Choice("plasma_resurfacing", N_("Plasma resurfacing")),
            Choice("other", N_("Something else, or I'm not sure what it was"), vague=True),
        ),
        subject=N_("at least one skin treatment"), noun="skin treatment",
    ),
    _ynu("microneedling_3m", "treatments", N_("In the last 3 months, have you had microneedling?"),
         lookback=(3, "months"),
         subject=N_("you have had microneedling in the last 3 months")),
    _group(
        "last_microneedling",
        N_("Tell us about each microneedling session"),
        "microneedling_3m",
        extra=(
            Question(
                "variant",
                SINGLE,
                N_("Which kind?"),
                choices=(
                    Choice("standard", N_("Microneedling")),
                    Choice("rf", N_("RF microneedling")),
                    Choice("prp", N_("Microneedling with PRP")),
                    Choice(VARIANT_UNKNOWN, N_("I don't know"), vague=True),
                ),
                subject=N_("which kind of microneedling it was"),
            ),
        ),
        subject=N_("at least one microneedling session"), noun="session",
    ),
    _ynu(
        "surgery_2y",
        "treatments",
        N_(
            "In the last 2 years, have you had surgery with a cut or stitches (such as a facelift, eyelid surgery, "
            "caesarean section, liposuction or a mole removal)?"
        ),
        lookback=(24, "months"),
        subject=N_("you have had surgery with a cut or stitches in the last 2 years"),
    ),
    _group(
        "surgery",
        N_("Tell us about each operation"),
        "surgery_2y",
        SURGERY_TYPES,
        subject=N_("at least one operation"), noun="operation",
    ),
    _ynu("thread_lift_2y", "treatments", N_("In the last 2 years, have you had a thread lift (dissolving threads)?"),
         lookback=(24, "months"),
         subject=N_("you have had a thread lift in the last 2 years")),
    _group("thread_lift", N_("Tell us about each thread lift"), "thread_lift_2y", THREAD_LIFT_TYPES,
           subject=N_("at least one thread lift"), noun="thread lift"),
    # Allergies --------------------------------------------------------------------
    _ynu(
        "anaesthetic_allergy",
        "allergies",
        N_(
            "Have you ever had an allergy or bad reaction to a numbing cream or local anaesthetic "
            "(lidocaine, EMLA, prilocaine, tetracaine, benzocaine)?"
        ),
        subject=N_("you have had an allergy or bad reaction to a numbing cream or local anaesthetic"),
    ),
    _details("anaesthetic_allergy_details", "allergies", "anaesthetic_allergy", N_("Which one, and what happened?"),
             subject=N_("what you reacted to, and what happened")),
    _ynu(
        "methaemoglobinaemia_or_g6pd",
        "allergies",
        N_("Do you have G6PD deficiency, methaemoglobinaemia or pseudocholinesterase deficiency?"),
        why=N_("We ask because numbing creams are not safe with these conditions."),
        subject=N_("you have G6PD deficiency, methaemoglobinaemia or pseudocholinesterase deficiency"),
    ),
    _ynu("metal_allergy", "allergies", N_("Are you allergic to any metal?"),
         subject=N_("you are allergic to any metal")),
    Question(
        "metal_allergy_which",
        MULTI,
        N_("Which metals?"),
        "allergies",
        asked_when=_yes("metal_allergy"),
        choices=(
            Choice("nickel", N_("Nickel")),
            Choice("cobalt", N_("Cobalt")),
            Choice("chromium", N_("Chromium")),
            Choice("stainless_steel", N_("Stainless steel")),
            Choice("gold", N_("Gold")),
            Choice("other", N_("Another metal"), vague=True),
            Choice("not_sure", N_("I'm not sure which"), vague=True),
        ),
        subject=N_("which metals you are allergic to"),
    ),
    _ynu(
        "product_allergies",
        "allergies",
        N_(
            "Are you allergic to chlorhexidine or alcohol skin wipes, latex, hyaluronic acid serum, "
            "or citrate (used in blood tubes)?"
        ),
        subject=N_("you are allergic to any of these products"),
    ),
    _ynu(
        "previous_microneedling_reaction",
        "allergies",
        N_("After microneedling before, did you have lumps, a rash or an allergic reaction?"),
        subject=N_("you had lumps, a rash or an allergic reaction after microneedling"),
    ),
]

QUESTIONS: tuple[Question, ...] = tuple(_QUESTIONS)
BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}

# The booking facts the engine needs besides the health answers.
BOOKING_IDS = ("appointment_date", "treatment_variant", "treatment_areas")


def questions_in(section_id: str) -> tuple[Question, ...]:
    """Return the questions of one section, in order."""
    return tuple(q for q in QUESTIONS if q.section == section_id)


def _to_plain(q: Question) -> dict:
    d = asdict(q)
    d["choices"] = [{"code": c.code, "label": c.label, "vague": c.vague} for c in q.choices]
    d["fields"] = [_to_plain(f) for f in q.fields]
    return d


def as_plain() -> dict:
    """Return the whole dictionary as JSON-ready data."""
    return {
        "version": VERSION,
        "sections": [asdict(s) for s in SECTIONS],
        "questions": [_to_plain(q) for q in QUESTIONS],
    }


def _version() -> str:
    body = {
        "sections": [asdict(s) for s in SECTIONS],
        "questions": [_to_plain(q) for q in QUESTIONS],
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return f"dd-{digest[:12]}"


# Changes whenever any question, choice, wording or condition changes.
VERSION = _version()


# ---------------------------------------------------------------------------
# Pages: a few questions at a time. Follow-ups go on their parent's page.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of the questionnaire: a heading and its top-level questions."""

    id: str
    section: str
    title: str
    question_ids: tuple[str, ...]


PAGES = (
    Page("about-you", "about_you", N_("About you"), ("full_name", "dob", "email", "phone")),
    Page("appointment", "appointment", N_("Your appointment"),
         ("appointment_date", "treatment_variant", "treatment_areas")),
    Page("pregnancy", "pregnancy", N_("Pregnancy and breastfeeding"), ("pregnant", "breastfeeding")),
    Page("isotretinoin", "medicines", N_("Acne tablets and skin products"),
         ("isotretinoin_last_12m", "topical_actives")),
    Page("blood-thinners", "medicines", N_("Blood thinners"), ("anticoagulants", "antiplatelets")),
    Page("other-medicines", "medicines", N_("Painkillers, steroids and immune medicines"),
         ("nsaid_last_7d", "systemic_steroid_last_14d", "immunosuppressive_meds")),
    Page("blood", "blood_and_infection", N_("Bleeding and blood tests"),
         ("bleeding_disorder", "fainting_with_blood_tests", "anaemia", "low_blood_pressure",
          "difficult_venous_access")),
    Page("immunity", "blood_and_infection", N_("Immunity and infections"),
         ("blood_borne_virus", "immunosuppressive_condition")),
    Page("cancer-now", "cancer", N_("Cancer treatment"),
         ("cancer_treatment_current_or_planned", "cancer_active_untreated", "cancer_treatment_last_12m")),
    Page("cancer-history", "cancer", N_("Cancer history"), ("cancer_history", "radiotherapy_ever")),
    Page("conditions", "conditions", N_("Diabetes and long-term conditions"),
         ("diabetes", "scleroderma_or_morphoea", "autoimmune_ctd")),
    Page("skin-conditions", "skin_history", N_("Skin conditions"), ("psoriasis", "lichen_planus", "vitiligo")),
    Page("scarring", "skin_history", N_("Scars and healing"),
         ("keloid_history", "hypertrophic_scar_history", "poor_wound_healing")),
    Page("skin-type", "skin_history", N_("Your skin type"),
         ("fitzpatrick", "pih_history", "melasma", "cold_sore_history")),
    Page("feeling-today", "skin_today", N_("How you feel today"),
         ("unwell_today", "systemic_infection_treatment", "cold_sore_now")),
    Page("skin-today", "skin_today", N_("Your skin today"),
         ("skin_infection_now", "open_wound", "rash_or_eczema_now")),
    Page("spots-and-sun", "skin_today", N_("Spots, moles and sun"),
         ("acne_active", "rosacea_active", "skin_cancer_or_lesion", "sun_exposure_14d")),
    Page("implants", "implants", N_("Devices and metal"), ("implanted_device", "metal_implants", "gold_threads")),
    Page("fillers", "implants", N_("Piercings, fillers and implants"),
         ("fixed_piercings", "permanent_filler", "facial_implant")),
    Page("injections", "treatments", N_("Injections"), ("injectables_12m",)),
    Page("skin-treatments", "treatments", N_("Skin treatments"), ("procedures_12m",)),
    Page("microneedling", "treatments", N_("Microneedling before"), ("microneedling_3m",)),
    Page("surgery", "treatments", N_("Surgery and thread lifts"), ("surgery_2y", "thread_lift_2y")),
    Page("anaesthetic", "allergies", N_("Numbing creams and metals"),
         ("anaesthetic_allergy", "methaemoglobinaemia_or_g6pd", "metal_allergy")),
    Page("allergies", "allergies", N_("Other allergies and reactions"),
         ("product_allergies", "previous_microneedling_reaction")),
)
PAGE_BY_ID = {p.id: p for p in PAGES}


def root_of(question_id: str) -> str:
    """Return the top-level question that (through follow-ups) asks ``question_id``."""
    q = BY_ID[question_id]
    while q.asked_when is not None:
        q = BY_ID[q.asked_when["question"]]
    return q.id


def page_of(question_id: str) -> Page:
    """Return the page a question is asked on."""
    root = root_of(question_id)
    for page in PAGES:
        if root in page.question_ids:
            return page
    raise KeyError(question_id)


def page_questions(page: Page) -> tuple[Question, ...]:
    """Return every question on ``page`` (follow-ups included), in dictionary order."""
    return tuple(q for q in QUESTIONS if root_of(q.id) in page.question_ids)


def _is_about_now(q: Question) -> bool:
    if q.about_now:
        return True
    if q.lookback is not None:
        amount, unit = q.lookback
        if amount * {"days": 1, "weeks": 7, "months": 31, "years": 366}[unit] <= 28:
            return True
    return q.asked_when is not None and _is_about_now(BY_ID[q.asked_when["question"]])


# Questions whose answer may have changed between the day it was given and the appointment.
ABOUT_NOW: frozenset[str] = frozenset(q.id for q in QUESTIONS if _is_about_now(q))

# ---------------------------------------------------------------------------
# Earlier versions of the dictionary: a stored submission is shown with the questions it was asked
# ---------------------------------------------------------------------------

ARCHIVE = Path(__file__).resolve().parent / "dictionaries"


@dataclass(frozen=True)
class Dictionary:
    """One version of the data dictionary: its sections and questions."""

    version: str
    sections: tuple[Section, ...]
    questions: tuple[Question, ...]

    @functools.cached_property
    def by_id(self) -> dict[str, Question]:
        """Return the questions by id."""
        return {q.id: q for q in self.questions}

    def questions_in(self, section_id: str) -> tuple[Question, ...]:
        """Return the questions of one section, in order."""
        return tuple(q for q in self.questions if q.section == section_id)


def _question_from_plain(d: Mapping[str, Any]) -> Question:
    fields = {k: v for k, v in d.items() if k in Question.__dataclass_fields__}
    fields["choices"] = tuple(Choice(**c) for c in d.get("choices", ()))
    fields["fields"] = tuple(_question_from_plain(f) for f in d.get("fields", ()))
    if fields.get("lookback") is not None:
        fields["lookback"] = tuple(fields["lookback"])
    return Question(**fields)


CURRENT = Dictionary(VERSION, SECTIONS, QUESTIONS)


@functools.lru_cache(maxsize=16)
def dictionary(version: str | None) -> Dictionary:
    """Return the dictionary a submission was answered with (the current one if it is not archived)."""
    if version == VERSION or not version:
        return CURRENT
    path = ARCHIVE / f"{version}.json"
    if not path.is_file():
        return CURRENT
    plain = json.loads(path.read_text(encoding="utf-8"))
    return Dictionary(
        version,
        tuple(Section(**s) for s in plain["sections"]),
        tuple(_question_from_plain(q) for q in plain["questions"]),
    )
