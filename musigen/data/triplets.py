"""(source, instruction, target) triplets for InstructME, built from the procedural corpus.

Every triplet is exact, because the corpus renders each instrument separately:

- **remove / extract / add** are stem arithmetic on one render (add = the piece without X
  as source, the piece as target); an instrument the render lacks is added by arranging a
  part for it on the same composition and rendering only that part;
- **replace A with B** re-orchestrates the same composition with B *in A's place*: B takes
  A's role (a melody is handed over note for note) and plays in A's sections;
- **remix to a genre** re-orchestrates the same composition with the genre's palette and
  groove, **remix with a list** with the listed instruments; chords, sections, tempo and
  length are those of the composition, so they are kept exactly.

New parts are rendered beside one reference stem of the current state, and scaled by the
ratio of the two renders of that reference, so they land at the gain of the stems already
there (the renderer shares one headroom gain per render) and untouched stems stay
bit-identical.  A multi-round :class:`EditSequence` applies edits in turn: each round's
target is the next round's source.  Everything is a pure function of ``(seed, index)``.

Real stem datasets (Slakh, MUSDB, MoisesDB) take the manifest path in
:mod:`musigen.data.stem_triplets`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from musigen.data.synth.composition import Composition, compose
from musigen.data.synth.orchestration import Orchestration, Part, orchestrate
from musigen.data.synth.render import RENDERERS, activity, render
from musigen.errors import ConfigError, DataError
from musigen.edits import TASKS, EditOp, render_instruction
from musigen.vocab import GENRES, INSTRUMENTS, canonical_genre

#: Instruments that can stand in for each other in "replace" (drums and bass have no stand-in).
HARMONIC: tuple[str, ...] = tuple(i for i in INSTRUMENTS if i not in ("drums", "bass"))
#: Seeds per index: piece seeds are ``seed + index * SEED_STRIDE + attempt``.
SEED_STRIDE = 64


@dataclass(frozen=True)
class TaskWeights:
    """Relative frequency of each edit task when tasks are drawn (0 disables a task)."""

    add: float = 1.0
    remove: float = 1.0
    extract: float = 1.0
    replace: float = 1.0
    remix_genre: float = 1.0
    remix_instruments: float = 0.5

    def __post_init__(self) -> None:
        values = [getattr(self, t) for t in TASKS]
        if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
            raise ConfigError(f"task weights must be >= 0 with a positive sum, got {values}")

    def weight(self, task: str) -> float:
        return float(getattr(self, task))


@dataclass
class TripletConfig:
    """How corpus triplets are drawn.  Durations are whole pieces (compose() fits sections)."""

    duration: float = 10.0
    sample_rate: int = 16000
    renderer: str = "builtin"
    genres: tuple[str, ...] = GENRES
    tasks: TaskWeights = field(default_factory=TaskWeights)
    max_rounds: int = 1  # sequences draw 1..max_rounds rounds
    paraphrase: float = 0.7  # probability of a paraphrase instead of the paper's template
    synonyms: float = 0.3  # probability of naming an instrument/genre by a synonym
    min_active_s: float = 1.0  # an instrument "sounds" when its stem is active this long
    headroom: float = 0.95  # one gain per sequence keeps every state's peak below this
    max_attempts: int = 16  # pieces tried per index before giving up

    def __post_init__(self) -> None:
        if isinstance(self.tasks, dict):  # from YAML
            self.tasks = TaskWeights(**self.tasks)
        self.genres = tuple(canonical_genre(g) for g in self.genres)
        if not self.genres:
            raise ConfigError("TripletConfig.genres must name at least one genre")
        if not (math.isfinite(self.duration) and 1.0 <= self.duration <= 600):
            raise ConfigError(f"duration must be 1..600 s, got {self.duration}")
        if self.renderer not in RENDERERS:
            raise ConfigError(
                f"unknown renderer {self.renderer!r}; choose from {', '.join(RENDERERS)}"
            )
        if self.max_rounds < 1 or not 1 <= self.max_attempts <= SEED_STRIDE:
            raise ConfigError(f"max_rounds must be >= 1 and max_attempts in 1..{SEED_STRIDE}")
        if not 0 < self.headroom <= 1 or self.min_active_s < 0:
            raise ConfigError("headroom must be in (0, 1] and min_active_s >= 0")


@dataclass
class Triplet:
    """One edit example.  Audio is mono float32 at `sample_rate`, source and target aligned."""

    source: np.ndarray
    target: np.ndarray
    instruction: str
    op: EditOp
    sample_rate: int
    #: exact chord labels of the source, when known (corpus); None = ask the recogniser
    chords: list[tuple[float, float, str]] | None
    sections: list[tuple[float, float, str]]
    source_instruments: tuple[str, ...]
    target_instruments: tuple[str, ...]
    source_genre: str | None
    target_genre: str | None
    origin: str  # "corpus:<piece seed>" or "<dataset>:<track id>"
    #: the stems summing to source / target (same gain as the audio)
    source_stems: dict[str, np.ndarray] = field(default_factory=dict)
    target_stems: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.source) / self.sample_rate


@dataclass
class EditSequence:
    """Multi-round editing: ``audio[k]`` is the source of round k and ``audio[k+1]`` its target."""

    audio: list[np.ndarray]
    ops: list[EditOp]
    instructions: list[str]
    instruments: list[tuple[str, ...]]  # sounding instruments of each state
    genres: list[str]
    sample_rate: int
    chords: list[tuple[float, float, str]]
    sections: list[tuple[float, float, str]]
    origin: str
    stems: list[dict[str, np.ndarray]]  # the stems of each state (same gain as `audio`)

    @property
    def rounds(self) -> int:
        return len(self.ops)

    def triplets(self) -> list[Triplet]:
        """Each round as a triplet (round k's target is round k+1's source)."""
        return [
            Triplet(
                self.audio[k], self.audio[k + 1], self.instructions[k], self.ops[k],
                self.sample_rate, self.chords, self.sections, self.instruments[k],
                self.instruments[k + 1], self.genres[k], self.genres[k + 1], self.origin,
                self.stems[k], self.stems[k + 1],
            )
            for k in range(self.rounds)
        ]


@dataclass
class _State:
    """A version of the piece: its arrangement, the stems that play, and stems to add back."""

    orch: Orchestration
    stems: dict[str, np.ndarray]
    #: stems of the same render and gain (including removed ones), for exact add-backs
    bank: dict[str, np.ndarray]
    bank_parts: dict[str, Part]

    @staticmethod
    def rendered(orch: Orchestration, stems: dict[str, np.ndarray]) -> _State:
        """A freshly rendered arrangement: everything plays, everything is in the bank."""
        return _State(orch, dict(stems), dict(stems), dict(orch.parts))


def _ordered(stems: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: stems[k] for k in INSTRUMENTS if k in stems}


def mix_of(stems: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Float32 sum of stems in instrument order (the corpus' own mixing order)."""
    out = np.zeros(n, np.float32)
    for k in INSTRUMENTS:
        if k in stems:
            out += stems[k]
    return out


class CorpusTriplets:
    """Draws triplets and multi-round sequences from the procedural corpus, in memory.

    ``CorpusTriplets(config, seed).sequence(i)`` is a pure function of ``(config, seed, i)``.
    """

    def __init__(self, config: TripletConfig | None = None, seed: int = 0) -> None:
        self.config = config or TripletConfig()
        self.seed = int(seed)

    # ------------------------------------------------------------------ public
    def triplet(self, index: int, task: str | None = None) -> Triplet:
        """One single-round triplet (`task` None = drawn by the task weights)."""
        return self.sequence(index, tasks=[task] if task else None, rounds=1).triplets()[0]

    def sequence(
        self, index: int, rounds: int | None = None, tasks: list[str] | None = None
    ) -> EditSequence:
        """A multi-round sequence; `tasks` fixes the task of each round (then rounds = len)."""
        c = self.config
        if tasks is not None:
            bad = [t for t in tasks if t not in TASKS]
            if bad or not tasks:
                raise ConfigError(f"unknown edit task(s) {bad}; known: {', '.join(TASKS)}")
            rounds = len(tasks)
        for attempt in range(c.max_attempts):
            rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(index), attempt])
            n_rounds = rounds or int(rng.integers(1, c.max_rounds + 1))
            made = self._try_sequence(index, attempt, n_rounds, tasks, rng)
            if made is not None:
                return made
        raise DataError(
            f"no feasible {tasks or 'edit'} sequence for index {index} in {c.max_attempts} pieces"
        )

    def iter_triplets(self, n: int, start: int = 0) -> Iterator[Triplet]:
        """Triplets of `n` sequences (each round of a multi-round sequence is one triplet)."""
        for i in range(start, start + n):
            yield from self.sequence(i).triplets()

    # ------------------------------------------------------------------ building
    def _try_sequence(
        self, index: int, attempt: int, rounds: int, tasks: list[str] | None,
        rng: np.random.Generator,
    ) -> EditSequence | None:
        c = self.config
        piece_seed = self.seed + int(index) * SEED_STRIDE + attempt
        genre = c.genres[(int(index) + attempt) % len(c.genres)]
        comp = compose(piece_seed, c.duration, genre)
        orch = orchestrate(comp, genre, None, piece_seed)
        stems = _ordered(self._render(comp, orch))
        states = [_State.rendered(orch, stems)]
        ops: list[EditOp] = []
        for k in range(rounds):
            want = tasks[k] if tasks else None
            made = self._round(comp, states, want, rng, first=(k == 0))
            if made is None:
                return None
            op, new = made
            ops.append(op)
            states.append(new)
        n = round(comp.duration * c.sample_rate)
        audio = [mix_of(s.stems, n) for s in states]
        peak = max(float(np.max(np.abs(a))) for a in audio)
        gain = np.float32(min(1.0, c.headroom / peak) if peak > 0 else 1.0)
        audio = [(a * gain).astype(np.float32) for a in audio]
        stems = [{k: (v * gain).astype(np.float32) for k, v in s.stems.items()} for s in states]
        texts = [render_instruction(op, rng, c.paraphrase, c.synonyms) for op in ops]
        return EditSequence(
            audio=audio, ops=ops, instructions=texts,
            instruments=[tuple(self._sounding(s.stems)) for s in states],
            genres=[s.orch.genre for s in states], sample_rate=c.sample_rate,
            chords=[(float(s), float(e), str(lab)) for s, e, lab in comp.chord_times()],
            sections=[(float(s), float(e), str(lab)) for s, e, lab in comp.section_times()],
            origin=f"corpus:{piece_seed}", stems=stems,
        )

    def _render(self, comp: Composition, orch: Orchestration) -> dict[str, np.ndarray]:
        c = self.config
        return dict(render(comp, orch, c.sample_rate, c.renderer).stems)

    def _sounding(self, stems: dict[str, np.ndarray]) -> list[str]:
        c = self.config
        out = []
        for k in INSTRUMENTS:
            if k in stems:
                total = sum(e - s for s, e in activity(stems[k], c.sample_rate))
                if total >= c.min_active_s:
                    out.append(k)
        return out

    def _round(
        self, comp: Composition, states: list[_State], want: str | None,
        rng: np.random.Generator, first: bool,
    ) -> tuple[EditOp, _State] | None:
        """Draw and apply one edit to the last state (trying other tasks if one is infeasible)."""
        weights = {t: (1.0 if want == t else 0.0) if want else self.config.tasks.weight(t)
                   for t in TASKS}
        while sum(weights.values()) > 0:
            names = [t for t in TASKS if weights[t] > 0]
            p = np.array([weights[t] for t in names])
            task = names[int(rng.choice(len(names), p=p / p.sum()))]
            made = getattr(self, f"_{task}")(comp, states, rng, first)
            if made is not None:
                return made
            weights[task] = 0.0
        return None

    # ------------------------------------------------------------------ the edits
    def _remove(self, comp: Composition, states: list[_State], rng: np.random.Generator,
                first: bool) -> tuple[EditOp, _State] | None:
        s = states[-1]
        on = self._sounding(s.stems)
        if len(on) < 2:
            return None
        x = on[int(rng.integers(len(on)))]
        return EditOp("remove", instrument=x), _without(s, {x})

    def _extract(self, comp: Composition, states: list[_State], rng: np.random.Generator,
                 first: bool) -> tuple[EditOp, _State] | None:
        s = states[-1]
        on = self._sounding(s.stems)
        if len(on) < 2:
            return None
        x = on[int(rng.integers(len(on)))]
        return EditOp("extract", instrument=x), _without(s, set(s.stems) - {x})

    def _add(self, comp: Composition, states: list[_State], rng: np.random.Generator,
             first: bool) -> tuple[EditOp, _State] | None:
        s = states[-1]
        if first:
            # Round one adds back a stem of the render: the source is the piece without it.
            on = self._sounding(s.stems)
            if len(on) < 2:
                return None
            x = on[int(rng.integers(len(on)))]
            states[-1] = s = _without(s, {x})
            return EditOp("add", instrument=x), _with(s, x, s.bank[x], s.bank_parts[x], comp)
        exact = [k for k in self._sounding(s.bank) if k not in s.stems]
        if exact and rng.random() < 0.5:
            x = exact[int(rng.integers(len(exact)))]
            return EditOp("add", instrument=x), _with(s, x, s.bank[x], s.bank_parts[x], comp)
        new = [k for k in INSTRUMENTS if k not in s.bank]
        for x in [new[i] for i in rng.permutation(len(new))]:
            part = self._new_part(comp, s.orch, x, role=None, sections=None)
            if part is None:
                continue
            stem = self._render_beside(comp, s, part)
            if stem is not None:
                return EditOp("add", instrument=x), _with(s, x, stem, part, comp)
        return None

    def _replace(self, comp: Composition, states: list[_State], rng: np.random.Generator,
                 first: bool) -> tuple[EditOp, _State] | None:
        s = states[-1]
        olds = [k for k in self._sounding(s.stems) if k in HARMONIC]
        news = [k for k in HARMONIC if k not in s.stems]
        if not olds or not news:
            return None
        a = olds[int(rng.integers(len(olds)))]
        role = s.orch.parts[a].role
        where = {n for n, v in s.orch.active.items() if a in v}
        for b in [news[i] for i in rng.permutation(len(news))]:
            if role == "melody" and b == "pad":
                continue  # pads only sustain chords in the corpus
            part = self._new_part(comp, s.orch, b, role=role, sections=where, replacing=a)
            if part is None:
                continue
            base = _without(s, {a})
            stem = self._render_beside(comp, s, part)
            if stem is not None:
                op = EditOp("replace", instrument=a, new_instrument=b)
                return op, _with(base, b, stem, part, comp)
        return None

    def _remix_genre(self, comp: Composition, states: list[_State], rng: np.random.Generator,
                     first: bool) -> tuple[EditOp, _State] | None:
        s = states[-1]
        others = [g for g in GENRES if g != s.orch.genre]
        g = others[int(rng.integers(len(others)))]
        orch = orchestrate(comp, g, None, s.orch.seed)
        stems = _ordered(self._render(comp, orch))
        if not self._sounding(stems):
            return None
        return EditOp("remix_genre", genre=g), _State.rendered(orch, stems)

    def _remix_instruments(self, comp: Composition, states: list[_State],
                           rng: np.random.Generator, first: bool) -> tuple[EditOp, _State] | None:
        s = states[-1]
        current = set(self._sounding(s.stems))
        for _ in range(4):
            size = int(rng.integers(2, 5))
            pick = {str(x) for x in rng.choice(INSTRUMENTS, size=size, replace=False)}
            if not pick & set(HARMONIC) or pick == current:
                continue
            names = [k for k in INSTRUMENTS if k in pick]
            for k in range(3):  # another arrangement seed if a listed part falls silent
                orch = orchestrate(comp, s.orch.genre, names, s.orch.seed + 101 * (k + 1))
                stems = _ordered(self._render(comp, orch))
                if set(self._sounding(stems)) == set(names):
                    return (EditOp("remix_instruments", instruments=tuple(names)),
                            _State.rendered(orch, stems))
        return None

    # ------------------------------------------------------------------ new parts
    def _new_part(
        self, comp: Composition, orch: Orchestration, x: str, role: str | None,
        sections: set[str] | None, replacing: str | None = None,
    ) -> Part | None:
        """A part for `x` arranged on the same composition and genre.

        With `role`, x must take that role (a melody is copied from `replacing` note for
        note, in x's register) and play in `sections` (its notes are cut to them); a few
        arrangement seeds are tried until x's own activity covers those sections.
        """
        if role == "melody" and replacing is not None:
            shift = (12 if replacing == "guitar" else 0) - (12 if x == "guitar" else 0)
            ref = orchestrate(comp, orch.genre, [x], orch.seed)
            notes = tuple(dataclasses.replace(n, pitch=n.pitch + shift)
                          for n in orch.parts[replacing].notes)
            return Part(x, "melody", ref.parts[x].program, notes)
        palette = [k for k in orch.instruments if k != replacing] + [x]
        for k in range(6):
            o2 = orchestrate(comp, orch.genre, palette, orch.seed + 7919 * k)
            part = o2.parts[x]
            if role is not None and part.role != role:
                return None  # roles depend on the palette only, not on the seed
            if sections is not None:
                if not sections <= {n for n, v in o2.active.items() if x in v}:
                    continue
                part = dataclasses.replace(
                    part, notes=tuple(n for n in part.notes if comp.section_at(n.start) in sections)
                )
            if part.notes:
                return part
        return None

    def _render_beside(self, comp: Composition, s: _State, part: Part) -> np.ndarray | None:
        """Render `part` next to the loudest stem of `s`; return it at `s`'s gain, or None if
        it does not sound long enough."""
        ref = max(s.stems, key=lambda k: float(np.sum(s.stems[k].astype(np.float64) ** 2)))
        x = part.instrument
        on = part_sections(comp, part)
        insts = tuple(k for k in INSTRUMENTS if k in (ref, x))
        parts = {ref: s.orch.parts[ref], x: part}
        drive = orchestrate(comp, s.orch.genre, list(insts), s.orch.seed).drive
        pair = dataclasses.replace(
            s.orch, instruments=insts, parts=parts, drive=drive,
            active={n: tuple(k for k in insts if k == ref and k in v or k == x and n in on)
                    for n, v in s.orch.active.items()},
        )
        stems = self._render(comp, pair)
        a, b = s.stems[ref].astype(np.float64), stems[ref].astype(np.float64)
        den = float(b @ b)
        ratio = float(a @ b) / den if den > 0 else 1.0
        stem = (stems[x] * np.float32(ratio)).astype(np.float32)
        return stem if x in self._sounding({x: stem}) else None


def _without(s: _State, names: set[str]) -> _State:
    """The state with `names` silenced (their stems stay in the bank for adding back)."""
    keep = tuple(k for k in s.orch.instruments if k not in names)
    orch = dataclasses.replace(
        s.orch, instruments=keep, parts={k: v for k, v in s.orch.parts.items() if k in keep},
        active={n: tuple(k for k in v if k in keep) for n, v in s.orch.active.items()},
    )
    return _State(orch, {k: v for k, v in s.stems.items() if k not in names}, s.bank, s.bank_parts)


def part_sections(comp: Composition, part: Part) -> set[str]:
    """Names of the sections in which `part` plays at least one note."""
    return {comp.section_at(n.start) for n in part.notes}


def _with(s: _State, x: str, stem: np.ndarray, part: Part, comp: Composition) -> _State:
    """The state with instrument `x` playing `part` as `stem`."""
    insts = tuple(k for k in INSTRUMENTS if k in s.orch.instruments or k == x)
    on = part_sections(comp, part)
    active = {n: tuple(k for k in insts if k in v or k == x and n in on)
              for n, v in s.orch.active.items()}
    orch = dataclasses.replace(s.orch, instruments=insts, parts={**s.orch.parts, x: part},
                               active=active)
    return _State(orch, _ordered({**s.stems, x: stem}), {**s.bank, x: stem},
                  {**s.bank_parts, x: part})
