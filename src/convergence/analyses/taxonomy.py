"""Cross-modal taxonomic generalisation (study 002, docs/science.md section E): concepts, hypernyms, the
question sets a projector is trained and tested on, the manipulations, and the scores.

Pure numpy/pandas; the training itself (torch, a frozen causal LM) is :mod:`convergence.analyses.taxonomy_train`.

**Concepts.** One concept per source image: a stimulus's ``concept`` variable (the source id, present when
the dataset renders ``variations``), else its stimulus id. Its *name* is the head noun of its caption
(:func:`caption_noun`: "A red kangaroo." -> "kangaroo"), or the concept itself (underscores as spaces)
when the dataset has no captions.

**Hypernyms** (:func:`folder_taxonomy`, the default): every folder level of a stimulus's labels
(``label`` = category, ``subcategory`` = ``category/sub``) is a candidate, named by its last folder as a
singular noun (:func:`hypernym_word`; ``mammals`` -> ``mammal``, ``roadsigns`` -> ``road sign``). **The
rule that picks the hypernyms:** a candidate is kept when it has at least ``min_concepts`` concepts and its
folder matches no ``exclude`` pattern (fnmatch: ``town`` excludes that level only, ``seasonal*`` the folder
and everything below it); candidates with the same word are one
hypernym. Concepts without any kept hypernym are left out. :func:`csv_taxonomy` reads a user's
``concept,hypernym`` CSV instead (concept = the stimulus's ``label``, e.g. a THINGS class folder), with the
same ``min_concepts`` rule.

**Questions.** "Is there a/an <word> in the image?" with answer yes/no: for every positive hypernym of a
concept as many negative ones (hypernyms it does not have, drawn with the seed), and one concept-name
question each way (its own name; another concept's name).

**Manipulations** (:func:`label_map`, :func:`removed_concepts`, :func:`training_questions`):
``shuffle: across`` relabels the images of each concept with another concept's name and hypernyms (a
seeded permutation of all concepts), ``shuffle: within`` with a concept of the same hypernym set (a
seeded derangement within each group: no concept keeps its own labels); ``remove: f`` drops every hypernym
question of ``round(f * n)`` concepts of each group of ``n`` concepts sharing one hypernym set (so each
hypernym loses the fraction ``f`` of its concepts, up to rounding), keeping their concept-name questions;
``drop: [hypernym, ...]`` removes every question that names these hypernyms and counts their concepts as
removed.

**Scores.** Yes/no macro-F1 (the mean of the F1 of "yes" and of "no") on the hypernym questions of held-out
images of the removed concepts (``unseen``) and of concepts whose hypernym questions were trained
(``seen``); visual coherence of a hypernym = mean pairwise cosine similarity of the image features of its
concepts under the condition's label map (:func:`coherence`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ARTICLES = ("a", "an", "the", "some", "two", "three", "several", "many")
#: Folder names whose singular is not the name without its final "s" (or that are two words).
IRREGULAR = {
    "fish": "fish", "shellfish": "shellfish", "clothes": "piece of clothing", "roadsigns": "road sign",
    "dishes": "dish", "food": "food", "fruit": "fruit", "masstransit": "mass transit vehicle",
    "arttools": "art tool", "people": "person", "seasonal": "seasonal thing", "town": "building",
    "household": "household object", "military": "military object", "space": "space object",
    "hobbies": "hobby object", "sports": "sports object", "construction": "construction vehicle",
    "emergency": "emergency vehicle", "flight": "aircraft", "auto": "car", "ship": "ship",
    "locomotive": "locomotive", "monuments": "monument", "mushrooms": "mushroom", "nuts": "nut",
    "vegetables": "vegetable", "marsupials": "marsupial", "amphibians": "amphibian", "dessert": "dessert",
}
_STOP = re.compile(r",|;|\(| with | on | in | from | that | which | called | wearing | holding | and ", re.I)


class TaxonomyError(ValueError):
    """A taxonomy or manipulation that cannot be built as configured."""


def caption_noun(caption: str) -> str:
    """The head noun of a caption's first noun phrase, lower case: the phrase before the first comma or
    clause word (with, on, in, called, ...), after ``of`` when it has one ("A pair of cherries." ->
    "cherries"), its last word ("A red kangaroo." -> "kangaroo")."""
    text = re.sub(r"[\u201c\u201d\"'\u2019.!?]", " ", str(caption)).strip()
    phrase = _STOP.split(f" {text} ", maxsplit=1)[0]
    if re.search(r"\bof\b", phrase, re.I):
        phrase = re.split(r"\bof\b", phrase, flags=re.I)[-1]
    words = [w for w in phrase.split() if w.lower() not in ARTICLES]
    if not words:
        raise TaxonomyError(f"caption {caption!r} has no noun to name its concept")
    return words[-1].lower()


def hypernym_word(folder: str, names: Mapping[str, str] | None = None) -> str:
    """A folder (``animals/mammals``) as a singular noun (``mammal``): ``names`` (config) first, then
    :data:`IRREGULAR`, then the last folder without a final ``s``; underscores become spaces."""
    names = dict(names or {})
    if folder in names:
        return names[folder]
    last = folder.rstrip("/").split("/")[-1]
    if last in names:
        return names[last]
    last = last.lower()
    if last in IRREGULAR:
        return IRREGULAR[last]
    word = last[:-1] if last.endswith("s") and not last.endswith("ss") else last
    return word.replace("_", " ")


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def question(word: str, template: str = "Is there {article} {word} in the image?") -> str:
    return template.format(article=article(word), word=word)


@dataclass
class Taxonomy:
    """Concepts (ids), their names, their hypernyms (words, general first) and the group (hypernym set)
    each concept belongs to."""

    concepts: list[str]
    names: dict[str, str]
    hypernyms: dict[str, tuple[str, ...]]
    words: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.words:
            self.words = sorted({h for hs in self.hypernyms.values() for h in hs})

    def group(self, concept: str) -> tuple[str, ...]:
        return tuple(sorted(self.hypernyms[concept]))

    def members(self, word: str) -> list[str]:
        return [c for c in self.concepts if word in self.hypernyms[c]]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"concept": self.concepts, "name": [self.names[c] for c in self.concepts],
                             "hypernyms": ["|".join(self.hypernyms[c]) for c in self.concepts]})


def _excluded(folder: str, exclude: Sequence[str]) -> bool:
    """Whether a folder matches an ``exclude`` pattern (fnmatch: ``town`` only that level, ``seasonal*`` the
    folder and everything below it)."""
    import fnmatch

    return any(fnmatch.fnmatchcase(folder, pattern) for pattern in exclude)


def _pick(candidates: dict[str, set[str]], min_concepts: int) -> dict[str, set[str]]:
    return {w: cs for w, cs in candidates.items() if len(cs) >= min_concepts}


def concept_rows(stimuli: pd.DataFrame) -> pd.DataFrame:
    """One row per concept (first stimulus of each) from a stimuli table with ``stimulus`` and optionally
    ``concept``, ``caption``, ``label``, ``subcategory``."""
    df = stimuli.copy()
    if "concept" not in df:
        df["concept"] = df["stimulus"]
    return df.drop_duplicates("concept").reset_index(drop=True)


def folder_taxonomy(stimuli: pd.DataFrame, *, min_concepts: int = 8, exclude: Sequence[str] = (),
                    names: Mapping[str, str] | None = None) -> Taxonomy:
    """Hypernyms from the label folders (module doc: the picking rule)."""
    rows = concept_rows(stimuli)
    if "label" not in rows:
        raise TaxonomyError("the dataset has no labels: folder hypernyms need a labelled source (e.g. tuxpaint), "
                            "or give taxonomy.hypernyms a concept,hypernym CSV")
    candidates: dict[str, set[str]] = {}
    for _, r in rows.iterrows():
        folders = {str(r["label"])}
        if "subcategory" in rows and isinstance(r.get("subcategory"), str):
            folders.add(r["subcategory"])
        for f in folders:
            if not _excluded(f, exclude):
                candidates.setdefault(hypernym_word(f, names), set()).add(r["concept"])
    kept = _pick(candidates, min_concepts)
    return _assemble(rows, kept, min_concepts)


def csv_taxonomy(stimuli: pd.DataFrame, table: pd.DataFrame, *, min_concepts: int = 8) -> Taxonomy:
    """Hypernyms from a ``concept,hypernym`` table (one row per pair); a stimulus's concept is its ``label``."""
    missing = {"concept", "hypernym"} - set(table.columns)
    if missing:
        raise TaxonomyError(f"the hypernym CSV needs columns concept and hypernym; missing {sorted(missing)}")
    if "label" not in stimuli:
        raise TaxonomyError("a hypernym CSV maps the dataset's labels (e.g. class folders) to hypernyms; this dataset has no labels")
    rows = stimuli.copy()
    rows["concept"] = rows["label"].astype(str)
    rows = rows.drop_duplicates("concept").reset_index(drop=True)
    rows = rows.drop(columns=[c for c in ("caption",) if c in rows])
    known = set(rows["concept"])
    candidates: dict[str, set[str]] = {}
    for c, h in zip(table["concept"].astype(str), table["hypernym"].astype(str)):
        if c in known:
            candidates.setdefault(h, set()).add(c)
    if not candidates:
        raise TaxonomyError(f"no concept of the hypernym CSV is a label of the dataset (labels e.g. {sorted(known)[:5]})")
    return _assemble(rows, _pick(candidates, min_concepts), min_concepts)


def _assemble(rows: pd.DataFrame, kept: dict[str, set[str]], min_concepts: int) -> Taxonomy:
    if len(kept) < 2:
        raise TaxonomyError(f"fewer than two hypernyms have at least {min_concepts} concepts (min_concepts); "
                            "lower taxonomy.min_concepts or change taxonomy.exclude")
    concepts, names, hyper = [], {}, {}
    for _, r in rows.iterrows():
        c = r["concept"]
        hs = tuple(sorted((w for w, cs in kept.items() if c in cs), key=lambda w: (-len(kept[w]), w)))
        if not hs:
            continue
        concepts.append(c)
        cap = r.get("caption") if "caption" in rows else None
        names[c] = caption_noun(cap) if isinstance(cap, str) and cap.strip() else str(c).split("/")[-1].replace("_", " ")
        hyper[c] = hs
    return Taxonomy(concepts, names, hyper, sorted(kept))


# ------------------------------------------------------------------------------------- manipulations


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly drawn permutation of ``range(n)`` without a fixed point (rejection sampling), n >= 2."""
    if n < 2:
        raise TaxonomyError("a derangement needs at least two items")
    while True:
        p = rng.permutation(n)
        if not np.any(p == np.arange(n)):
            return p


def label_map(tax: Taxonomy, shuffle: str, seed: int) -> dict[str, str]:
    """Image concept -> the concept whose name and hypernyms its images are given. ``none``: itself;
    ``across``: a seeded permutation of all concepts; ``within``: a derangement within each hypernym set."""
    rng = np.random.default_rng([seed, 2])
    cs = list(tax.concepts)
    if shuffle == "none":
        return {c: c for c in cs}
    if shuffle == "across":
        return dict(zip(cs, [cs[i] for i in rng.permutation(len(cs))]))
    if shuffle == "within":
        out = {}
        groups: dict[tuple, list[str]] = {}
        for c in cs:
            groups.setdefault(tax.group(c), []).append(c)
        for g, members in sorted(groups.items()):
            if len(members) < 2:
                raise TaxonomyError(f"within-category shuffle: hypernym set {list(g)} has a single concept "
                                    f"({members[0]!r}), which no derangement can move; raise min_concepts")
            p = derangement(len(members), rng)
            out.update({c: members[i] for c, i in zip(members, p)})
        return out
    raise TaxonomyError(f"shuffle {shuffle!r} is not allowed; allowed: none, across, within")


def removed_concepts(tax: Taxonomy, mapping: Mapping[str, str], fraction: float, seed: int,
                     drop: Sequence[str] = ()) -> set[str]:
    """Image concepts whose hypernym questions are removed: ``round(fraction * n)`` of each group of ``n``
    image concepts whose (mapped) labels share one hypernym set, drawn with the seed, plus every concept
    whose labels include a dropped hypernym."""
    if not 0 <= fraction <= 1:
        raise TaxonomyError(f"remove must be a fraction in [0, 1], got {fraction}")
    unknown = sorted(set(drop) - set(tax.words))
    if unknown:
        raise TaxonomyError(f"drop names unknown hypernym(s) {unknown}; hypernyms: {tax.words}")
    rng = np.random.default_rng([seed, 1])
    groups: dict[tuple, list[str]] = {}
    for c in tax.concepts:
        groups.setdefault(tax.group(mapping[c]), []).append(c)
    out = set()
    for g in sorted(groups):
        members = groups[g]
        k = int(np.floor(fraction * len(members) + 0.5))
        out.update(members[i] for i in rng.choice(len(members), k, replace=False))
    out.update(c for c in tax.concepts if set(tax.hypernyms[mapping[c]]) & set(drop))
    return out


def _negatives(rng, tax: Taxonomy, positives: Sequence[str], n: int, banned: Sequence[str] = ()) -> list[str]:
    pool = [w for w in tax.words if w not in positives and w not in banned]
    return [pool[i] for i in rng.choice(len(pool), min(n, len(pool)), replace=False)] if pool else []


def concept_questions(tax: Taxonomy, mapping: Mapping[str, str], concept: str, image: int, key: Sequence[int], *,
                      names: bool = True, hypernyms: bool = True, drop: Sequence[str] = ()) -> list[dict]:
    """The questions about one image of image concept ``concept`` (labels of ``mapping[concept]``); negatives
    are drawn with generators seeded by ``key`` (one for hypernyms, one for names, so leaving out one kind
    changes nothing in the other)."""
    label = mapping[concept]
    rng = np.random.default_rng([*key, 0])
    out = []
    if hypernyms:
        pos = [h for h in tax.hypernyms[label] if h not in drop]
        for h in pos:
            out.append({"concept": concept, "image": image, "word": h, "kind": "hypernym", "answer": True})
        for h in _negatives(rng, tax, tax.hypernyms[label], len(pos), drop):
            out.append({"concept": concept, "image": image, "word": h, "kind": "hypernym", "answer": False})
    if names:
        own = tax.names[label]
        others = sorted({tax.names[c] for c in tax.concepts} - {own})
        out.append({"concept": concept, "image": image, "word": own, "kind": "name", "answer": True})
        if others:
            name_rng = np.random.default_rng([*key, 1])
            out.append({"concept": concept, "image": image, "word": others[name_rng.integers(len(others))], "kind": "name",
                        "answer": False})
    return out


QUESTION_COLUMNS = ["concept", "image", "word", "kind", "answer"]


def training_questions(tax: Taxonomy, mapping: Mapping[str, str], images: Mapping[str, Sequence[int]],
                       removed: set[str], seed: int, drop: Sequence[str] = ()) -> pd.DataFrame:
    """Every training question: for each image of each concept its name questions, and its hypernym
    questions unless the concept is removed; no question names a dropped hypernym. Each image's questions
    are drawn with a generator of its own, so removing a concept changes no other concept's questions."""
    rows = []
    for n, c in enumerate(tax.concepts):
        for i in images[c]:
            # generators per image: the negatives drawn for one image do not depend on what else is asked
            rows += concept_questions(tax, mapping, c, int(i), [seed, 3, n, int(i)], hypernyms=c not in removed,
                                      drop=drop)
    return pd.DataFrame(rows, columns=QUESTION_COLUMNS)


def test_questions(tax: Taxonomy, mapping: Mapping[str, str], images: Mapping[str, Sequence[int]],
                   removed: set[str], seed: int, max_concepts: int | None = None) -> pd.DataFrame:
    """Hypernym questions (every hypernym of the mapped labels, as many negatives) on the held-out images of
    removed (``split`` unseen) and of other (seen) concepts, at most ``max_concepts`` of each, drawn with the seed."""
    rng = np.random.default_rng([seed, 4])
    index = {c: n for n, c in enumerate(tax.concepts)}
    rows = []
    for split, pool in (("unseen", [c for c in tax.concepts if c in removed]),
                        ("seen", [c for c in tax.concepts if c not in removed])):
        if max_concepts is not None and len(pool) > max_concepts:
            pool = [pool[i] for i in sorted(rng.choice(len(pool), max_concepts, replace=False))]
        for c in pool:
            for i in images[c]:
                for q in concept_questions(tax, mapping, c, int(i), [seed, 5, index[c], int(i)], names=False):
                    rows.append({**q, "split": split})
    return pd.DataFrame(rows, columns=[*QUESTION_COLUMNS, "split"])


# ------------------------------------------------------------------------------- language-only ceiling

#: The default question of the language-only ceiling: the concept is named in the text, no image.
ORACLE_TEMPLATE = "Question: Is {concept_article} {concept} {article} {word}? Answer:"


def oracle_text(concept_name: str, word: str, template: str = ORACLE_TEMPLATE) -> str:
    """The ceiling's question about hypernym ``word`` for a concept named in the text (``{concept}``,
    ``{concept_article}``, ``{word}``, ``{article}``)."""
    return template.format(concept=concept_name, concept_article=article(concept_name), word=word,
                           article=article(word))


def oracle_questions(tax: Taxonomy, images: Mapping[str, Sequence[int]], seed: int,
                     template: str = ORACLE_TEMPLATE) -> pd.DataFrame:
    """The hypernym questions of every concept under its own labels (the test questions' positives and drawn
    negatives, on its held-out images), with the concept's ``name`` and the ceiling's question ``text``."""
    identity = {c: c for c in tax.concepts}
    table = test_questions(tax, identity, images, set(), seed, None)
    names = [tax.names[c] for c in table["concept"]]
    return table.assign(name=names, text=[oracle_text(n, w, template) for n, w in zip(names, table["word"])])


def oracle_scores(answers: pd.DataFrame) -> dict:
    """Macro-F1 at the conditions' rule (yes when ``score > 0``) and the threshold-free ROC AUC of ``score``
    for the ceiling's answered questions (columns ``answer``, ``score``)."""
    from sklearn.metrics import roc_auc_score

    y = answers["answer"].to_numpy(bool)
    score = answers["score"].to_numpy(float)
    auc = float(roc_auc_score(y, score)) if 0 < y.sum() < y.size else float("nan")
    return {"f1": macro_f1(y, score > 0), "auc": auc, "n_questions": int(y.size), "n_concepts":
            int(answers["concept"].nunique())}


# ------------------------------------------------------------------------------------------- scores


def macro_f1(answer, predicted) -> float:
    """Mean over the classes yes and no of F1 (scikit-learn's macro F1 over the classes present in the answers
    or the predictions: a class absent from both is left out; NaN for no questions)."""
    from sklearn.metrics import f1_score

    y, p = np.asarray(answer, bool), np.asarray(predicted, bool)
    if y.size == 0:
        return float("nan")
    present = sorted(set(y.tolist()) | set(p.tolist()))
    return float(f1_score(y, p, labels=present, average="macro", zero_division=0.0))


def coherence(features: np.ndarray, groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Per group, the mean cosine similarity over all pairs of distinct rows of ``features`` it holds."""
    x = np.asarray(features, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    out = {}
    for g, rows in groups.items():
        rows = np.asarray(rows, int)
        n = len(rows)
        if n < 2:
            out[g] = float("nan")
            continue
        s = x[rows].sum(0)
        out[g] = float((s @ s - n) / (n * (n - 1)))
    return out


def hypernym_images(tax: Taxonomy, mapping: Mapping[str, str], images: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """Hypernym -> the image rows labelled with it under ``mapping``."""
    out: dict[str, list[int]] = {w: [] for w in tax.words}
    for c in tax.concepts:
        for h in tax.hypernyms[mapping[c]]:
            out[h].extend(int(i) for i in images[c])
    return out


def scores(answers: pd.DataFrame) -> dict:
    """Macro-F1 and accuracy per split, and per hypernym of the unseen split (a test-questions table with a
    boolean ``predicted`` column)."""
    out = {}
    for split in ("unseen", "seen"):
        part = answers[answers["split"] == split]
        out[f"f1_{split}"] = macro_f1(part["answer"], part["predicted"])
        out[f"accuracy_{split}"] = float((part["answer"] == part["predicted"]).mean()) if len(part) else float("nan")
        out[f"n_{split}"] = int(len(part))
    per = {}
    unseen = answers[answers["split"] == "unseen"]
    for w, part in unseen.groupby("word"):
        per[str(w)] = macro_f1(part["answer"], part["predicted"])
    out["f1_unseen_by_hypernym"] = per
    return out


# ---------------------------------------------------------------------------------------- aggregate

SUMMARY_FIELDS = ("f1_unseen", "f1_seen", "accuracy_unseen", "accuracy_seen", "n_unseen", "n_seen", "n_concepts",
                  "n_hypernyms", "n_removed", "n_train_hypernym_questions", "coherence_mean", "coherence_original_mean",
                  "seconds_train", "seconds_test", "seconds_total", "device")


def aggregate(metric_files: Sequence[str], hypernym_files: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per run (labels, condition fields, :data:`SUMMARY_FIELDS`) and the per-hypernym rows of every run."""
    import json

    rows, per = [], []
    for mf, hf in zip(metric_files, hypernym_files):
        with open(mf) as fh:
            m = json.load(fh)
        cond = m["condition"]
        labels = {"vision": m["vision"], "lm": m["lm"], "condition": m["condition_name"], "seed": m["seed"],
                  "remove": cond["remove"], "shuffle": cond["shuffle"], "drop": "|".join(cond["drop"]),
                  "lm_weights": cond["lm"]}
        rows.append({**labels, **{k: m.get(k) for k in SUMMARY_FIELDS}})
        per.append(pd.read_csv(hf).assign(**labels))
    return pd.DataFrame(rows), (pd.concat(per, ignore_index=True) if per else pd.DataFrame())


ORACLE_FIELDS = ("lm", "f1", "auc", "n_questions", "n_concepts", "template")


def oracle_table(metric_files: Sequence[str]) -> pd.DataFrame:
    """One row per language model's ceiling (:data:`ORACLE_FIELDS`); empty, with those columns, when none ran."""
    import json

    rows = []
    for path in metric_files:
        with open(path) as fh:
            m = json.load(fh)
        rows.append({k: m.get(k) for k in ORACLE_FIELDS})
    return pd.DataFrame(rows, columns=list(ORACLE_FIELDS))
