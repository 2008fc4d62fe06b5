"""Song sections of a recording: self-similarity segmentation labelled by repetition and energy.

Why: an edit limited to "the chorus" needs the chorus's times, and a user's file carries no
section tags.  The analysis needs no training:

1. **Features.**  Chroma (harmony), MFCCs (timbre) and log-RMS plus onset strength (energy,
   drum density) per frame, averaged over blocks of `BLOCK_S` seconds, each stream z-scored.
2. **Boundaries.**  Foote novelty: a Gaussian-tapered checkerboard kernel of `KERNEL_S`
   seconds slid along the diagonal of the blocks' cosine self-similarity matrix; its peaks
   (at least `MIN_SECTION_S` apart and from the ends, above the curve's median plus
   `PEAK_SD` standard deviations) are the boundaries.  Kernel, spacing and threshold were
   chosen on 16 corpus pieces (seed 10400000), not on the pieces docs/editing.md reports.
3. **Labels (the heuristic).**  Segments whose mean feature vectors have a cosine
   similarity of at least `SAME_GROUP` are one group (repetitions of the same part).  A
   first segment no louder than the piece's median segment (loudness: log-RMS plus onset
   strength, z-scored) is the **intro**, a last one (of three or more) likewise the
   **outro**.  The rest is the body, and a song opens on a verse: among the body's groups
   other than the first body segment's, the loudest, plus `REPEAT_BONUS` per repetition,
   is the **chorus** (loud and repeated).  Other body segments are **verses**, except a
   one-off segment between two choruses, the **bridge**.

The labels are a heuristic, not a classifier: a piece whose loudest part is not its chorus
gets the wrong names.  docs/editing.md reports how often it is right on the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musigen.edits import SECTIONS

#: Seconds per feature block (the boundaries' resolution).
BLOCK_S = 0.5
#: Seconds of the checkerboard kernel (each half sees half of it).
KERNEL_S = 6.0
#: The shortest section the analysis reports (boundaries at least this far apart).
MIN_SECTION_S = 3.0
#: A novelty peak is a boundary above the curve's median plus this many standard deviations.
PEAK_SD = 1.0
#: Cosine similarity of two segments' mean features that makes them one group.
SAME_GROUP = 0.6
#: Score per repetition of a group when the chorus is chosen (loudness is z-scored).
REPEAT_BONUS = 0.25


@dataclass(frozen=True)
class Section:
    """One section: [start, end) in seconds, its label, and its repetition group."""

    start: float
    end: float
    label: str
    group: int

    def as_tuple(self) -> tuple[float, float, str]:
        return (self.start, self.end, self.label)


def _zscore(x: np.ndarray) -> np.ndarray:
    """Each row to zero mean and unit variance over time (constant rows to 0)."""
    mu = x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    return (x - mu) / np.where(sd > 1e-8, sd, 1.0)


def block_features(wav: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(features [dims, blocks], loudness [blocks]) of mono `wav`, one block per BLOCK_S."""
    import librosa

    hop = 512
    y = np.asarray(wav, dtype=np.float32)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, hop_length=hop, n_fft=2048)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, hop_length=hop, n_mfcc=14)[1:]
    rms = np.log(librosa.feature.rms(y=y, hop_length=hop)[0] + 1e-5)
    onset = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    n = min(chroma.shape[1], mfcc.shape[1], rms.size, onset.size)
    per = max(1, int(round(BLOCK_S * sr / hop)))
    blocks = max(1, int(np.ceil(n / per)))

    def pool(x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)[:, :n]
        return np.stack([x[:, i * per:(i + 1) * per].mean(axis=1) for i in range(blocks)], 1)

    energy = np.vstack([pool(rms), pool(onset)])
    feats = np.vstack([_zscore(pool(chroma)), _zscore(pool(mfcc)), 2.0 * _zscore(energy)])
    loud = _zscore(energy).mean(axis=0)
    return feats, loud


def novelty(feats: np.ndarray) -> np.ndarray:
    """Foote novelty of [dims, blocks] features: a Gaussian-tapered checkerboard kernel
    slid along the diagonal of the cosine self-similarity matrix."""
    x = feats / np.maximum(np.linalg.norm(feats, axis=0, keepdims=True), 1e-8)
    ssm = x.T @ x
    half = max(2, int(round(KERNEL_S / BLOCK_S / 2)))
    idx = np.arange(-half, half) + 0.5
    taper = np.exp(-0.5 * (idx / (0.5 * half)) ** 2)
    kernel = np.outer(np.sign(idx), np.sign(idx)) * np.outer(taper, taper)
    n = ssm.shape[0]
    padded = np.pad(ssm, half, mode="edge")
    out = np.zeros(n)
    for i in range(n):
        out[i] = float((padded[i:i + 2 * half, i:i + 2 * half] * kernel).sum())
    return np.maximum(out, 0.0)


def boundaries(curve: np.ndarray) -> list[int]:
    """Block indices of the novelty peaks, at least MIN_SECTION_S apart (strongest kept)."""
    gap = max(1, int(round(MIN_SECTION_S / BLOCK_S)))
    threshold = np.median(curve) + PEAK_SD * curve.std()
    peaks = [i for i in range(1, curve.size - 1)
             if curve[i] >= curve[i - 1] and curve[i] > curve[i + 1] and curve[i] > threshold]
    chosen: list[int] = []
    for i in sorted(peaks, key=lambda j: -curve[j]):
        if i >= gap and curve.size - i >= gap and all(abs(i - j) >= gap for j in chosen):
            chosen.append(i)
    return sorted(chosen)


def _groups(means: np.ndarray) -> list[int]:
    """Group index per segment: each joins the most similar earlier segment's group when
    the similarity reaches SAME_GROUP, else starts a group."""
    x = means / np.maximum(np.linalg.norm(means, axis=0, keepdims=True), 1e-8)
    groups: list[int] = []
    for i in range(x.shape[1]):
        best, best_sim = -1, SAME_GROUP
        for j in range(i):
            sim = float(x[:, i] @ x[:, j])
            if sim >= best_sim:
                best, best_sim = groups[j], sim
        groups.append(best if best >= 0 else max(groups, default=-1) + 1)
    return groups


def label_segments(groups: list[int], loudness: list[float]) -> list[str]:
    """Section names for segments with these repetition groups and loudness (the heuristic
    in the module docstring)."""
    n = len(groups)
    if n == 1:
        return ["verse"]
    loud = np.asarray(loudness, dtype=np.float64)
    median = float(np.median(loud))
    labels = ["" for _ in range(n)]
    if loud[0] <= median:
        labels[0] = "intro"
    if n > 2 and loud[-1] <= median:
        labels[-1] = "outro"
    body = [i for i in range(n) if not labels[i]] or list(range(n))
    count = {g: sum(groups[i] == g for i in body) for g in {groups[i] for i in body}}
    # a song opens on a verse: the chorus is another group, where there is one
    candidates = [g for g in count if g != groups[body[0]]] or list(count)
    score = {g: float(np.mean([loud[i] for i in body if groups[i] == g]))
             + REPEAT_BONUS * (count[g] - 1) for g in candidates}
    chorus = max(score, key=lambda g: (score[g], -g))
    for i in body:
        labels[i] = "chorus" if groups[i] == chorus else "verse"
    choruses = [i for i in body if labels[i] == "chorus"]
    for i in body:
        if (labels[i] == "verse" and count[groups[i]] == 1 and len(choruses) > 1
                and choruses[0] < i < choruses[-1]):
            labels[i] = "bridge"
    assert all(lab in SECTIONS for lab in labels)
    return labels


def find_sections(wav: np.ndarray, sample_rate: int) -> list[Section]:
    """Sections of mono (or [channels, samples]) `wav`, covering it from 0 to its end."""
    y = np.asarray(wav, dtype=np.float32)
    if y.ndim > 1:
        y = y.mean(axis=0)
    duration = y.size / sample_rate
    feats, loud = block_features(y, sample_rate)
    cuts = boundaries(novelty(feats)) if feats.shape[1] > 2 else []
    edges = [0, *cuts, feats.shape[1]]
    segs = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    means = np.stack([feats[:, a:b].mean(axis=1) for a, b in segs], axis=1)
    groups = _groups(means)
    loudness = [float(loud[a:b].mean()) for a, b in segs]
    labels = label_segments(groups, loudness)
    times = [min(duration, a * BLOCK_S) for a, _ in segs] + [duration]
    return [Section(round(times[i], 3), round(times[i + 1], 3), labels[i], groups[i])
            for i in range(len(segs))]


def section_intervals(sections: list[tuple[float, float, str]]) -> tuple[np.ndarray, list[str]]:
    """mir_eval's (intervals [n, 2], labels) from (start, end, label) triples."""
    return (np.array([[s, e] for s, e, _ in sections], dtype=np.float64).reshape(-1, 2),
            [lab for _, _, lab in sections])
