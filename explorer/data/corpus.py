"""The explorer's sentence corpus (``explorer/data/corpus/sentences.json``) and its fixed split.

266 English sentences written for this project: 72 paraphrase pairs and 122 unrelated
distractors (plain data, read with ``json``). The split never changes:

- evaluation: every pair with an odd index (36 whole pairs, 72 sentences) and every fourth
  distractor (31): 103 sentences;
- calibration: the other 36 pairs (both sentences) and the other 91 distractors: 163.

Usage::

    split = load_corpus()
    split.calibration            # tuple of 163 sentences
    split.evaluation             # tuple of 103 sentences; pairs first, then distractors
    split.eval_pairs             # ((i, j), ...) indices into split.evaluation, 36 pairs
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CORPUS_FILE", "CorpusSplit", "load_corpus", "read_corpus"]

CORPUS_FILE = Path(__file__).resolve().parent / "corpus" / "sentences.json"
EVAL_PAIR_EVERY = 2        # pairs with index % 2 == 1 are evaluation pairs
EVAL_DISTRACTOR_EVERY = 4  # distractors with index % 4 == 0 are evaluation distractors


@dataclass(frozen=True)
class CorpusSplit:
    """``calibration`` / ``evaluation`` sentences; ``eval_pairs`` are the index pairs of the
    paraphrases inside ``evaluation`` (each pair whole, never split across the two sets)."""

    calibration: tuple[str, ...]
    evaluation: tuple[str, ...]
    eval_pairs: tuple[tuple[int, int], ...]


def read_corpus(path: Path = CORPUS_FILE) -> tuple[list[tuple[str, str]], list[str]]:
    """``(pairs, distractors)`` from the corpus file."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    pairs = [(str(a), str(b)) for a, b in doc["pairs"]]
    return pairs, [str(s) for s in doc["distractors"]]


@functools.lru_cache(maxsize=1)
def load_corpus() -> CorpusSplit:
    """The fixed calibration / evaluation split (see the module docstring)."""
    pairs, distractors = read_corpus()
    calibration: list[str] = []
    evaluation: list[str] = []
    eval_pairs: list[tuple[int, int]] = []
    for index, (a, b) in enumerate(pairs):
        if index % EVAL_PAIR_EVERY == 1:
            eval_pairs.append((len(evaluation), len(evaluation) + 1))
            evaluation += [a, b]
        else:
            calibration += [a, b]
    for index, sentence in enumerate(distractors):
        (evaluation if index % EVAL_DISTRACTOR_EVERY == 0 else calibration).append(sentence)
    return CorpusSplit(tuple(calibration), tuple(evaluation), tuple(eval_pairs))
