"""Edit instructions: free text <-> a structured :class:`EditOp`.

The model reads the raw instruction through the text encoder, so paraphrases work without
this module; the parser exists to validate what a user typed (unknown instrument -> a clear
error listing the known ones) and to label evaluation items per task.  The renderer goes the
other way: it turns an :class:`EditOp` into varied training text (the paper's templates plus
paraphrases), and every rendering parses back to the same op.

This grammar is core, below every model: the data layer renders training triplets with it
and the InstructME pipeline checks user text with it.
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass
import numpy as np

from musigen.errors import MusigenError, shorten
from musigen.vocab import (
    GENRE_SYNONYMS,
    GENRES,
    INSTRUMENT_SYNONYMS,
    INSTRUMENTS,
    canonical_genre,
    canonical_instrument,
)

#: The six tasks of InstructME, named as in its templates.
TASKS: tuple[str, ...] = ("add", "remove", "extract", "replace", "remix_genre", "remix_instruments")
#: Song sections an edit may be limited to ("remove drums in the chorus"); the procedural
#: corpus labels its pieces with exactly these.
SECTIONS: tuple[str, ...] = ("intro", "verse", "chorus", "bridge", "outro")


class InstructionError(MusigenError):
    """An instruction is empty or matches none of the supported edit forms."""


@dataclass(frozen=True)
class EditOp:
    """One edit: `task` plus the canonical instrument(s) or genre it needs.

    - add / remove / extract: `instrument`
    - replace: `instrument` (the one that goes) and `new_instrument` (the one that comes)
    - remix_genre: `genre`
    - remix_instruments: `instruments` (the new palette, in the order given)

    `section` limits any of them to one section of the piece ("... in the chorus").
    """

    task: str
    instrument: str | None = None
    new_instrument: str | None = None
    genre: str | None = None
    instruments: tuple[str, ...] = ()
    section: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InstructionError(
                f"unknown edit task {self.task!r}; known tasks: {', '.join(TASKS)}"
            )
        needs_inst = self.task in ("add", "remove", "extract", "replace")
        if needs_inst != (self.instrument is not None):
            raise InstructionError(
                f"edit task {self.task!r} {'needs' if needs_inst else 'takes no'} instrument"
            )
        if (self.task == "replace") != (self.new_instrument is not None):
            raise InstructionError("only 'replace' takes a new_instrument, and it needs one")
        if (self.task == "remix_genre") != (self.genre is not None):
            raise InstructionError("only 'remix_genre' takes a genre, and it needs one")
        if (self.task == "remix_instruments") != bool(self.instruments):
            raise InstructionError(
                "only 'remix_instruments' takes an instrument list, and it needs one"
            )
        for name in (self.instrument, self.new_instrument, *self.instruments):
            if name is not None and name not in INSTRUMENTS:
                canonical_instrument(name)  # raises VocabularyError listing the known ones
                raise InstructionError(
                    f"EditOp needs canonical instrument names, got {shorten(name)}")
        if self.genre is not None and self.genre not in GENRES:
            canonical_genre(self.genre)
            raise InstructionError(
                f"EditOp needs a canonical genre name, got {shorten(self.genre)}")
        if len(set(self.instruments)) != len(self.instruments):
            raise InstructionError(
                f"the remix instrument list repeats a name: {list(self.instruments)}"
            )
        if self.task == "replace" and self.instrument == self.new_instrument:
            raise InstructionError(f"cannot replace {self.instrument} with itself")
        if self.section is not None:
            check_section(self.section)

    def canonical_text(self) -> str:
        """The paper's template form, e.g. 'remove drums' or 'remix to funk genre'
        (plus ' in the chorus' for an edit limited to a section)."""
        where = f" in the {self.section}" if self.section else ""
        if self.task == "replace":
            return f"replace {self.instrument} with {self.new_instrument}{where}"
        if self.task == "remix_genre":
            return f"remix to {self.genre} genre{where}"
        if self.task == "remix_instruments":
            return f"remix with {_join_list(list(self.instruments))}{where}"
        return f"{self.task} {self.instrument}{where}"


def check_section(name: object) -> str:
    """`name` if it is one of SECTIONS, else an InstructionError naming them."""
    if name not in SECTIONS:
        raise InstructionError(
            f"unknown section {shorten(str(name))}; known sections: {', '.join(SECTIONS)}")
    return str(name)


# "... in the chorus", "... during the verse", "... for the intro only": a trailing section
# phrase.  Only the five section names match, so "in the mix" or "in the background" stay
# with the instrument phrase as before.
_SECTION_TAIL = re.compile(
    r"\s+(?:(?:only|just)\s+)?(?:in|during|for|over|throughout|at)\s+(?:the\s+|a\s+|each\s+|"
    r"every\s+)?(?P<section>" + "|".join(SECTIONS) + r")(?:e?s)?(?:\s+(?:only|part|section))?"
    r"(?P<tail>(?:,?\s+(?:please|for me|thanks|thank you|now))*[\s,.!?]*)$",
    re.IGNORECASE,
)


def split_section(text: str) -> tuple[str, str | None]:
    """("remove drums in the chorus please") -> ("remove drums please", "chorus").

    The text without its trailing section phrase is what the model reads (it was trained on
    whole-file instructions); text without one comes back unchanged, with None.
    """
    m = _SECTION_TAIL.search(text.replace("’", "'"))
    if m is None:
        return text, None
    rest = (text[:m.start()] + m.group("tail")).strip()
    return rest, m.group("section").lower()


# ----------------------------------------------------------------------------- parsing


def _any(phrases: str, *patterns: str) -> str:
    """A regex alternation of the '|'-separated plain `phrases` plus raw regex `patterns`,
    longest first so that 'strip out' is tried before 'strip'."""
    words = [w.strip() for w in phrases.split("|") if w.strip()] + list(patterns)
    return "(?:" + "|".join(sorted(words, key=len, reverse=True)) + ")"


_VERBS_AFTER_JUST = _any(
    "add|remove|extract|replace|swap|take|get|drop|mute|put|bring|make|turn|remix|change|use|keep|"
    "isolate|solo|cut|delete|give|play|rearrange|convert"
)
_POLITE = _any(
    "please|kindly|now|then|and|also|ok|okay|hey|so|let's|lets|try to|go ahead and",
    r"(?:can|could|would|will) you",
    r"i(?:'d| would) like (?:you )?to",
    r"i want (?:you )?to",
    rf"just(?= {_VERBS_AFTER_JUST}\b)",
)
_LEAD = re.compile(rf"^(?:{_POLITE}\s+)+")
_TAIL = re.compile(r"(?:\s+(?:please|for me|thanks|thank you|now))+$")
_ARTICLES = _any(
    "the|a|an|some|any|all|all of the|all the|my|our|this|that|these|those|its|more|of"
)
_FILLER = re.compile(rf"^(?:{_ARTICLES}\s+)+")
_PART = re.compile(
    r"\s+(?:parts?|tracks?|stems?|sounds?|layers?|lines?|sections?|playing|instruments?)$"
)
_PLACE = re.compile(
    r"\s+(?:(?:from|to|into|in|on|onto|out of|off)\s+(?:the|this|that|it|my)?\s*"
    r"(?:mix|song|track|tune|piece|music|recording|arrangement|top|background|it|this)?|"
    r"(?:as well|too|in|out|back|alone|only|away|off|instead|on top|in the background))$"
)
_GENRE_WORDS = re.compile(
    r"\s+(?:genre|style|version|vibe|feel|song|track|tune|remix|music|groove|mix|sound|one)$"
)
_PRONOUN = r"(?:it|this|that|everything|the (?:song|track|piece|mix|music|tune|whole thing))"
_LIST_SPLIT = re.compile(r"\s*(?:,\s*(?:and|plus|&)?\s*|\s+(?:and|plus|&|with)\s+|\s*\+\s*|\s*;\s*)\s*")
_A, _B = r"(?P<a>.+?)", r"(?P<b>.+?)"
_ALONE = r"(?: only| alone| by itself| on its own)"

_REPLACE = _any("replace|swap|swap out|exchange|switch|switch out|trade")
_CHANGE = _any("change|turn|convert|transform|make")
_REMIX = "remix|rearrange|re-arrange|redo|arrange|cover"
_REMIX_LIST = _any(f"{_REMIX}|reorchestrate|re-orchestrate|play")
_REMIX_GENRE = _any(f"{_REMIX}|rework|convert|transform|turn|change|restyle|adapt|make")
_EXTRACT = _any(
    "extract|isolate|separate|solo|keep only|only keep|keep just|just keep|leave only|only leave|"
    "leave just|give me only|give me just|give me|nothing but"
)
_REMOVE = _any(
    "strip out|cut out|take out|pull out|leave out|filter out|take away|get rid of|do away with|"
    "remove|delete|drop|mute|cut|erase|eliminate|kill|lose|strip|silence|subtract"
)
_ADD = _any(
    "add|put in|bring in|throw in|layer|layer in|include|introduce|insert|mix in|overdub|"
    "incorporate|append|put|bring|throw|let's hear"
)
_SOME = r"(?:some |a |an |more )?"

# Tried in order; the first form that matches AND whose slots name known instruments or genres
# wins.  Replace comes first because its forms contain other verbs ("turn A into B"), genre
# remixes before add ("give it a jazz feel").  `replace_rev` forms name the new one first.
_FORMS: tuple[tuple[str, str], ...] = (
    ("replace", rf"{_REPLACE} {_A} (?:with|for|by|to|into) {_B}"),
    ("replace", rf"{_CHANGE} (?!{_PRONOUN}\b){_A} (?:into|to) {_B}"),
    ("replace", rf"play (?!{_PRONOUN}\b){_A} (?:part )?on {_B}(?: instead)?"),
    ("replace_rev", rf"(?:use|play|put in|bring in) {_B} instead of {_A}"),
    ("replace_rev", rf"(?:substitute|sub in) {_B} for {_A}"),
    ("replace_rev", rf"{_B} instead of {_A}"),
    (
        "remix_instruments",
        rf"{_REMIX_LIST}(?: {_PRONOUN})? (?:with|using|for|on|featuring) (?:only |just )?{_A}",
    ),
    (
        "remix_genre",
        rf"{_REMIX_GENRE}(?: {_PRONOUN})? (?:to|into|as|in(?: the style of)?|in an?|like)"
        rf"(?: an?| the)? {_A}",
    ),
    ("remix_genre", rf"make {_PRONOUN} (?:sound |feel |more )?(?:like )?(?:an? )?{_A}"),
    ("remix_genre", rf"(?:give {_PRONOUN}|add) an? {_A} (?:feel|vibe|groove|touch|flavou?r|style)"),
    ("remix_genre", rf"(?:an? )?{_A} (?:remix|version|rendition|cover)(?: of {_PRONOUN})?"),
    ("extract", rf"{_EXTRACT} {_A}{_ALONE}?"),
    ("extract", rf"(?:only|just) (?:the )?{_A}"),
    ("extract", rf"{_A}{_ALONE}"),
    ("extract", rf"(?:keep|leave) {_A} and (?:remove|drop|mute|cut) (?:everything|all) else"),
    ("extract", rf"(?:remove|drop|mute|cut|take out) everything (?:but|except(?: for)?) {_A}"),
    ("remove", rf"{_REMOVE} {_A}"),
    ("remove", rf"(?:take|cut|leave|pull|strip|filter) {_A} out"),
    ("remove", rf"(?:make {_PRONOUN} |play {_PRONOUN} )?(?:without|minus|with no|no more|no) {_A}"),
    ("remove", rf"(?:i )?(?:don'?t|do not) want (?:any )?{_A}"),
    ("add", rf"{_ADD} {_A}"),
    ("add", rf"(?:give (?:it|this)|it needs|needs|i want|we need) {_SOME}{_A}"),
    ("add", rf"(?:play )?(?:{_PRONOUN} )?with {_SOME}{_A}(?: added| on top| too| as well)?"),
)
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (task, re.compile(rf"^{form}$")) for task, form in _FORMS
)


def _normalise(text: str) -> str:
    """Lower-case, drop punctuation at the ends, and strip polite framing."""
    s = " ".join(text.strip().lower().replace("’", "'").split())
    s = re.sub(r"[.!?;:]+$", "", s).strip()
    s = re.sub(r"^[\"']|[\"']$", "", s).strip()
    previous = None
    while previous != s:
        previous = s
        s = _LEAD.sub("", s).strip()
        s = _TAIL.sub("", s).strip()
    return s


def _clean_phrase(phrase: str, genre: bool = False) -> str:
    """Strip articles, 'part/track' words and trailing places ('from the mix') off a name."""
    s = phrase.strip(" ,.")
    previous = None
    while previous != s:
        previous = s
        s = _PLACE.sub("", s).strip()
        s = _FILLER.sub("", s).strip()
        s = _PART.sub("", s).strip()
        if genre:
            s = _GENRE_WORDS.sub("", s).strip()
            s = re.sub(r"^(?:more|bit more|little more|lot more)\s+", "", s).strip()
    return s


def _instrument(phrase: str, task: str) -> str:
    name = _clean_phrase(phrase)
    if not name:
        raise InstructionError(f"the {task!r} instruction names no instrument")
    if len(_LIST_SPLIT.split(name)) > 1 and name not in INSTRUMENT_SYNONYMS:
        raise InstructionError(
            f"{task!r} takes one instrument, got {shorten(phrase)}; "
            "give several instructions for multi-round editing"
        )
    return canonical_instrument(name)


def _genre(phrase: str) -> str:
    name = _clean_phrase(phrase, genre=True)
    if not name:
        raise InstructionError("the remix instruction names no genre")
    for candidate in (
        name,
        name.removesuffix("er"),
        name.removesuffix("ier") + "y",
        name.removesuffix("y"),
    ):
        if candidate in GENRES or candidate in GENRE_SYNONYMS:
            return canonical_genre(candidate)
    return canonical_genre(name)  # raises VocabularyError listing the known genres


def _build(task: str, m: re.Match[str]) -> EditOp:
    if task.startswith("replace"):
        old = _instrument(m.group("a"), "replace")
        new = _instrument(m.group("b"), "replace")
        return EditOp("replace", instrument=old, new_instrument=new)
    if task == "remix_genre":
        return EditOp("remix_genre", genre=_genre(m.group("a")))
    if task == "remix_instruments":
        items = [_clean_phrase(p) for p in _LIST_SPLIT.split(_clean_phrase(m.group("a")))]
        names = [canonical_instrument(p) for p in items if p]
        if not names:
            raise InstructionError(
                f"the remix instruction lists no instruments: {shorten(m.group(0))}")
        return EditOp("remix_instruments", instruments=tuple(dict.fromkeys(names)))
    return EditOp(task, instrument=_instrument(m.group("a"), task))


def parse_instruction(text: str) -> EditOp:
    """Parse one free-text instruction ("take out the drums", "make it funky") into an EditOp.

    Raises InstructionError for an empty or unrecognised instruction and VocabularyError for
    an unknown instrument or genre (both messages list what is supported).
    """
    if not isinstance(text, str):
        raise InstructionError(f"an instruction must be a string, got {type(text).__name__}")
    s, section = split_section(_normalise(text))
    if not s:
        raise InstructionError(
            "the instruction is empty; say e.g. 'remove drums' or 'remix to funk genre'"
        )
    if section is not None:
        return dataclasses.replace(_parse_normalised(_normalise(s), text), section=section)
    return _parse_normalised(s, text)


def _parse_normalised(s: str, text: str) -> EditOp:
    """The edit forms tried in order on normalised text `s` (`text` is quoted in errors)."""
    if not s:
        raise InstructionError(
            "the instruction names only a section; say e.g. 'remove drums in the chorus'")
    # A form whose slot does not name a known instrument/genre falls through to the next form
    # ("remove drums only" is not "extract 'remove drums'"); if none fits, the first
    # matching form's error is the most specific one to show.
    first_error: MusigenError | None = None
    for task, pattern in _PATTERNS:
        m = pattern.match(s)
        if m is None:
            continue
        try:
            return _build(task, m)
        except MusigenError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    raise InstructionError(
        f"cannot understand the instruction {shorten(text)}; supported forms: 'add X', 'remove X', "
        "'extract X', 'replace X with Y', 'remix to GENRE genre', 'remix with X, Y and Z' "
        f"(instruments: {', '.join(INSTRUMENTS)}; genres: {', '.join(GENRES)})"
    )


def parse_instructions(texts: str | list[str]) -> list[EditOp]:
    """Parse one instruction or a multi-round list; an empty list is an error."""
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items:
        raise InstructionError("no instruction given")
    return [parse_instruction(t) for t in items]


# ----------------------------------------------------------------------------- rendering

#: The paper's templates first; the rest are paraphrases the parser also accepts.
TEMPLATES: dict[str, tuple[str, ...]] = {
    task: tuple(t.strip() for t in forms.split("|"))
    for task, forms in {
        "add": "add {a}|add some {a}|add {a} to the mix|put in some {a}|bring in the {a}|"
        "layer {a} on top|introduce {a}|throw in some {a}|mix in some {a}|give it some {a}|"
        "include {a}|can you add {a}?|please add a {a} part",
        "remove": "remove {a}|remove the {a}|take out the {a}|get rid of the {a}|drop the {a}|"
        "mute the {a}|delete the {a} track|cut the {a}|take the {a} out|"
        "remove the {a} from the mix|without {a}|no {a} please|lose the {a}|strip out the {a}|"
        "could you remove the {a}?",
        "extract": "extract {a}|extract the {a}|isolate the {a}|only keep the {a}|"
        "keep only the {a}|solo the {a}|just the {a}|{a} only|leave only the {a}|separate the {a}|"
        "give me just the {a}|remove everything but the {a}|the {a} alone",
        "replace": "replace {a} with {b}|replace the {a} with {b}|swap the {a} for {b}|"
        "swap {a} with {b}|change the {a} to {b}|turn the {a} into {b}|use {b} instead of {a}|"
        "play the {a} part on {b} instead|substitute {b} for {a}|switch the {a} to {b}|"
        "exchange the {a} for {b}|{b} instead of {a}",
        "remix_genre": "remix to {g} genre|remix to {g}|remix it as {g}|turn it into a {g} track|"
        "make it {g}|make it sound like {g}|convert the song to {g}|remix in the style of {g}|"
        "a {g} version|{g} remix|give it a {g} feel|rearrange it as a {g} song|"
        "make this a {g} tune",
        "remix_instruments": "remix with {l}|remix it with {l}|rearrange with {l}|remix using {l}|"
        "rearrange the song for {l}|redo it with {l}|re-orchestrate for {l}|play it with {l}",
    }.items()
}

#: Surface names a renderer may use per canonical instrument (the paraphrase vocabulary).
_SURFACES: dict[str, tuple[str, ...]] = {
    inst: (
        inst,
        *(k for k, v in INSTRUMENT_SYNONYMS.items() if v == inst and k not in ("kit", "beat")),
    )
    for inst in INSTRUMENTS
}
_GENRE_SURFACES: dict[str, tuple[str, ...]] = {
    g: (g, *(k for k, v in GENRE_SYNONYMS.items() if v == g)) for g in GENRES
}


def _pick(rng: random.Random | np.random.Generator, items: tuple[str, ...] | list[str]) -> str:
    """Uniform choice that works for `random.Random` and `numpy.random.Generator` alike."""
    if isinstance(rng, np.random.Generator):
        return items[int(rng.integers(len(items)))]
    if isinstance(rng, random.Random):
        return items[rng.randrange(len(items))]
    raise TypeError(
        f"rng must be random.Random or numpy.random.Generator, got {type(rng).__name__}"
    )


def _join_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def render_instruction(
    op: EditOp,
    rng: random.Random | np.random.Generator,
    paraphrase: float = 0.7,
    synonyms: float = 0.3,
) -> str:
    """Render `op` as training text: a paper template, or with probability `paraphrase` a
    paraphrase; each instrument/genre is named by a synonym with probability `synonyms`."""
    if not 0.0 <= paraphrase <= 1.0 or not 0.0 <= synonyms <= 1.0:
        raise InstructionError("paraphrase and synonyms must be probabilities in [0, 1]")
    templates = TEMPLATES[op.task]
    template = _pick(rng, templates[1:]) if rng.random() < paraphrase else templates[0]

    def inst(name: str) -> str:
        return (
            _pick(rng, _SURFACES[name][1:])
            if rng.random() < synonyms and len(_SURFACES[name]) > 1
            else name
        )

    if op.task == "remix_genre":
        assert op.genre is not None
        surfaces = _GENRE_SURFACES[op.genre]
        g = _pick(rng, surfaces[1:]) if rng.random() < synonyms and len(surfaces) > 1 else op.genre
        return template.format(g=g)
    if op.task == "remix_instruments":
        return template.format(l=_join_list([inst(n) for n in op.instruments]))
    assert op.instrument is not None
    return template.format(
        a=inst(op.instrument), b=inst(op.new_instrument) if op.new_instrument else ""
    )
