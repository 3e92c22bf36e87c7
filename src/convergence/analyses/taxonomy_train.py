"""Training and querying the projector of the taxonomy analysis (study 002): frozen image features -> ``k``
prefix vectors in a frozen causal LM's input-embedding space, trained on yes/no questions.

The sequence the LM reads is ``[its leading special tokens] [k image vectors] [question tokens]``; the answer
is ``logit(yes) - logit(no)`` of the next token after the question (only those two rows of the output
matrix are computed, at each question's last position), trained with the logistic loss. Questions are
right-padded: under causal attention no real token sees the padding after it, so no mask is needed. The
LM's parameters never receive gradients (``requires_grad`` off, and the optimiser holds only the
projector's); features are standardised with the training images' mean and standard deviation; the
projector's output is multiplied by the standard deviation of the LM's input-embedding matrix (a fixed
number), so that an initial prefix has the scale of a word embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .taxonomy import ORACLE_TEMPLATE, question


class Projector(nn.Module):
    """``linear``: one affine map; ``mlp``: affine, GELU, affine (``hidden`` units). Output (batch, k, dim)."""

    def __init__(self, in_dim: int, out_dim: int, k: int = 1, kind: str = "linear", hidden: int = 512,
                 scale: float = 1.0):
        super().__init__()
        if kind == "linear":
            self.net = nn.Linear(in_dim, k * out_dim)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, k * out_dim))
        else:
            raise ValueError(f"projector {kind!r} is not allowed; allowed: linear, mlp")
        self.k, self.out_dim = int(k), int(out_dim)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        return self.scale * self.net(z).view(len(x), self.k, self.out_dim)


def answer_token(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(f"answer {text!r} is {len(ids)} tokens for this tokenizer; taxonomy.answers must be single tokens")
    return int(ids[0])


def leading_specials(tokenizer) -> list[int]:
    """Tokens that go before the image prefix: those the tokenizer puts before a text (e.g. Gemma's <bos>),
    else its BOS token (else EOS) when it has one. A causal LM's first position tends to act as an attention
    sink whose content later positions ignore, so the image must not sit there."""
    with_special = tokenizer("Is", add_special_tokens=True)["input_ids"]
    plain = tokenizer("Is", add_special_tokens=False)["input_ids"]
    n = len(with_special) - len(plain)
    if n > 0 and with_special[n:] == plain:
        return list(with_special[:n])
    for token in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token is not None:
            return [int(token)]
    return []


class PrefixQA(nn.Module):
    """A frozen causal LM answering yes/no questions about ``k`` prefix vectors."""

    def __init__(self, lm, tokenizer, *, answers: Sequence[str] = (" yes", " no"),
                 template: str = "Is there {article} {word} in the image?"):
        super().__init__()
        self.lm = lm.eval()
        self.lm.requires_grad_(False)
        self.tokenizer = tokenizer
        self.template = template
        self.answer_ids = [answer_token(tokenizer, a) for a in answers]
        self.specials = leading_specials(tokenizer)
        self._ids: dict[str, list[int]] = {}

    @property
    def dim(self) -> int:
        return int(self.lm.get_input_embeddings().weight.shape[1])

    def embedding_scale(self) -> float:
        return float(self.lm.get_input_embeddings().weight.detach().float().std())

    def tokens(self, word: str) -> list[int]:
        if word not in self._ids:
            self._ids[word] = list(self.tokenizer(question(word, self.template), add_special_tokens=False)["input_ids"])
        return self._ids[word]

    def forward(self, prefix: torch.Tensor, words: Sequence[str]) -> torch.Tensor:
        """``logit(yes) - logit(no)`` per row: ``prefix`` (batch, k, dim), ``words`` the asked words."""
        device = prefix.device
        emb = self.lm.get_input_embeddings()
        rows = [self.tokens(w) for w in words]
        length = max(len(r) for r in rows)
        pad = self.answer_ids[1]
        ids = torch.tensor([r + [pad] * (length - len(r)) for r in rows], device=device)
        parts = []
        if self.specials:
            parts.append(emb(torch.tensor(self.specials, device=device)).unsqueeze(0).expand(len(rows), -1, -1))
        parts += [prefix.to(emb.weight.dtype), emb(ids)]
        x = torch.cat(parts, 1)
        hidden = self.lm.get_decoder()(inputs_embeds=x, use_cache=False).last_hidden_state
        last = torch.tensor([len(self.specials) + prefix.shape[1] + len(r) - 1 for r in rows], device=device)
        h = hidden[torch.arange(len(rows), device=device), last]
        head = self.lm.get_output_embeddings()
        w = head.weight[self.answer_ids]
        logits = h @ w.T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[self.answer_ids]
        cap = getattr(self.lm.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return (logits[:, 0] - logits[:, 1]).float()


def train_projector(qa: PrefixQA, projector: Projector, features: np.ndarray, images: np.ndarray, words: Sequence[str],
                    answers: np.ndarray, *, epochs: int = 3, batch_size: int = 32, lr: float = 1e-3,
                    questions_per_epoch: int | None = None, weight_decay: float = 0.0, seed: int = 0,
                    device: str | torch.device = "cpu", progress: bool = False, bf16: bool = False) -> list[float]:
    """Fit ``projector`` on questions (image row, asked word, answer) with Adam; returns the mean loss of each
    epoch. Each epoch draws ``questions_per_epoch`` questions (all when None) without replacement. ``bf16``:
    run the LM under bfloat16 autocast (the projector's parameters and the loss stay float32)."""
    from tqdm.auto import tqdm

    torch.manual_seed(int(seed))
    rng = np.random.default_rng(seed)
    feats = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
    used = np.unique(images)
    projector.mean.copy_(feats[used].mean(0))
    std = feats[used].std(0)
    projector.std.copy_(std.clamp_min(1e-3 * float(std.mean()) + 1e-8))  # near-constant features stay finite
    opt = torch.optim.Adam([p for p in projector.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    target = torch.as_tensor(np.asarray(answers, np.float32), device=device)
    n = len(words)
    per_epoch = n if not questions_per_epoch else min(n, int(questions_per_epoch))
    losses = []
    steps = epochs * -(-per_epoch // batch_size)
    bar = tqdm(total=steps, desc="projector", disable=not progress)
    for _ in range(epochs):
        order = rng.permutation(n)[:per_epoch]
        total = 0.0
        for start in range(0, per_epoch, batch_size):
            idx = order[start:start + batch_size]
            prefix = projector(feats[torch.as_tensor(images[idx], device=device)])
            with _autocast(device, bf16):
                score = qa(prefix, [words[i] for i in idx])
            loss = nn.functional.binary_cross_entropy_with_logits(score, target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
        losses.append(total / per_epoch)
    bar.close()
    return losses


def _autocast(device, enabled: bool):
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bool(enabled))


@torch.no_grad()
def answer(qa: PrefixQA, projector: Projector, features: np.ndarray, images: np.ndarray, words: Sequence[str], *,
           batch_size: int = 64, device: str | torch.device = "cpu", bf16: bool = False) -> np.ndarray:
    """``logit(yes) - logit(no)`` for every question (positive = yes)."""
    feats = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
    out = []
    for start in range(0, len(words), batch_size):
        sl = slice(start, start + batch_size)
        prefix = projector(feats[torch.as_tensor(np.asarray(images[sl]), device=device)])
        with _autocast(device, bf16):
            out.append(qa(prefix, list(words[sl])).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def random_like(lm, seed: int):
    """The LM's architecture from its config with random weights (transformers' initialisation, seeded)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(int(seed))
    model = AutoModelForCausalLM.from_config(lm.config)
    return model.to(next(lm.parameters()).dtype).eval()


# ------------------------------------------------------------------------------------------ one run

#: Options of one run and their defaults (config section ``taxonomy``, minus what routes the workflow).
RUN_DEFAULTS = {
    "hypernyms": "folders", "min_concepts": 8, "exclude": [], "names": {}, "layer": None, "projector": "linear",
    "hidden": 512, "k": 1, "epochs": 3, "batch_size": 32, "lr": 1e-3, "questions_per_epoch": None,
    "eval_concepts": 60, "answers": [" yes", " no"], "template": "Is there {article} {word} in the image?",
    "name_questions": True, "oracle_template": ORACLE_TEMPLATE, "bf16": True,
}
CONDITION_DEFAULTS = {"remove": 0.0, "shuffle": "none", "drop": [], "lm": "pretrained"}


def stimuli_table(stimuli) -> pd.DataFrame:
    """The per-stimulus variables of a stimuli store as a table (no images)."""
    cols = {"stimulus": [str(s) for s in stimuli["stimulus"].values]}
    for var in ("concept", "variation", "caption", "label", "subcategory"):
        if var in stimuli:
            cols[var] = stimuli[var].values.tolist()
    return pd.DataFrame(cols)


def build_taxonomy(table: pd.DataFrame, options: dict):
    from .taxonomy import csv_taxonomy, folder_taxonomy

    if options["hypernyms"] == "folders":
        return folder_taxonomy(table, min_concepts=options["min_concepts"], exclude=options["exclude"],
                               names=options["names"])
    return csv_taxonomy(table, pd.read_csv(options["hypernyms"], dtype=str, keep_default_na=False),
                        min_concepts=options["min_concepts"])


def image_split(table: pd.DataFrame, tax, options: dict) -> tuple[dict, dict]:
    """Concept -> training image rows and -> held-out image rows. With rendered variations the last
    variation of each concept is held out; without, every image serves both (documented limitation)."""
    key = "label" if options["hypernyms"] != "folders" else ("concept" if "concept" in table else "stimulus")
    rows = {c: [] for c in tax.concepts}
    for i, c in enumerate(table[key].astype(str)):
        if c in rows:
            rows[c].append(i)
    train, test = {}, {}
    for c, rs in rows.items():
        if "variation" in table and table["variation"].nunique() > 1:
            last = table["variation"].iloc[rs].max()
            test[c] = [r for r in rs if table["variation"].iloc[r] == last]
            train[c] = [r for r in rs if table["variation"].iloc[r] != last]
        elif len(rs) > 1 and key == "label":
            test[c], train[c] = rs[-1:], rs[:-1]
        else:
            train[c] = test[c] = rs
    return train, test


def load_lm(name: str, spec: dict, device):
    """The causal LM and tokenizer of zoo entry ``spec`` (through the ordinary loaders and caches)."""
    from ..models import load_encoder

    enc = load_encoder(name, {**spec, "layers": "last"}, device)
    if not getattr(enc, "causal", False) or not hasattr(enc.model, "get_output_embeddings"):
        raise ValueError(f"taxonomy: model {name!r} is not a causal LM; language_models must be causal LMs")
    return enc.model, enc.tokenizer


def run_condition(stimuli, embeddings, lm, tokenizer, condition: dict, options: dict, *, seed: int = 0,
                  device="cpu", progress: bool = False) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Train and test one (vision model, LM, condition, seed). Returns metrics, the answered test questions
    and per-hypernym coherence (and unseen F1)."""
    import time

    from ..analyses.consistency import layer_of
    from .taxonomy import (coherence, hypernym_images, label_map, removed_concepts, scores, test_questions,
                           training_questions)

    options = {**RUN_DEFAULTS, **options}
    condition = {**CONDITION_DEFAULTS, **condition}
    unknown = sorted(set(condition) - set(CONDITION_DEFAULTS))
    if unknown:
        raise ValueError(f"taxonomy condition: unknown field(s) {unknown}; allowed: {sorted(CONDITION_DEFAULTS)}")
    if condition["lm"] not in ("pretrained", "random"):
        raise ValueError(f"taxonomy condition lm {condition['lm']!r} is not allowed; allowed: pretrained, random")
    t0 = time.perf_counter()
    table = stimuli_table(stimuli)
    layer = layer_of(embeddings, options["layer"])
    emb_ids = [str(s) for s in embeddings["stimulus"].values]
    if emb_ids != table["stimulus"].tolist():
        raise ValueError("taxonomy: the embedding store does not hold the stimuli of the stimuli store in order")
    features = np.asarray(embeddings[layer].values, np.float32)
    tax = build_taxonomy(table, options)
    train_img, test_img = image_split(table, tax, options)
    mapping = label_map(tax, condition["shuffle"], seed)
    removed = removed_concepts(tax, mapping, float(condition["remove"]), seed, condition["drop"])
    train_q = training_questions(tax, mapping, train_img, removed, seed, condition["drop"])
    if not options["name_questions"]:
        train_q = train_q[train_q["kind"] != "name"].reset_index(drop=True)
    test_q = test_questions(tax, mapping, test_img, removed, seed, options["eval_concepts"])
    if condition["lm"] == "random":
        lm = random_like(lm, seed)
    qa = PrefixQA(lm, tokenizer, answers=options["answers"], template=options["template"]).to(device)
    torch.manual_seed(int(seed))
    projector = Projector(features.shape[1], qa.dim, options["k"], options["projector"], options["hidden"],
                          scale=qa.embedding_scale()).to(device)
    t_train = time.perf_counter()
    losses = train_projector(qa, projector, features, train_q["image"].to_numpy(), train_q["word"].tolist(),
                             train_q["answer"].to_numpy(), epochs=options["epochs"], batch_size=options["batch_size"],
                             lr=options["lr"], questions_per_epoch=options["questions_per_epoch"], seed=seed,
                             device=device, progress=progress, bf16=options["bf16"])
    t_test = time.perf_counter()
    test_q = test_q.assign(score=answer(qa, projector, features, test_q["image"].to_numpy(), test_q["word"].tolist(),
                                        device=device, bf16=options["bf16"]))
    test_q["predicted"] = test_q["score"] > 0
    test_q["concept_labels"] = test_q["concept"].map(mapping)
    metrics = scores(test_q)
    original = coherence(features, hypernym_images(tax, {c: c for c in tax.concepts}, {**train_img}))
    mapped = coherence(features, hypernym_images(tax, mapping, {**train_img}))
    per = pd.DataFrame({"hypernym": tax.words, "n_concepts": [len(tax.members(w)) for w in tax.words],
                        "coherence": [mapped[w] for w in tax.words],
                        "coherence_original": [original[w] for w in tax.words],
                        "f1_unseen": [metrics["f1_unseen_by_hypernym"].get(w, float("nan")) for w in tax.words]})
    metrics.update(
        condition=condition, layer=layer, n_concepts=len(tax.concepts), n_hypernyms=len(tax.words),
        hypernyms=tax.words, n_removed=len(removed), n_train_questions=int(len(train_q)),
        n_train_hypernym_questions=int((train_q["kind"] == "hypernym").sum()),
        questions_per_epoch=int(min(len(train_q), options["questions_per_epoch"] or len(train_q))),
        epochs=int(options["epochs"]), losses=losses,
        coherence_mean=float(np.nanmean(list(mapped.values()))),
        coherence_original_mean=float(np.nanmean(list(original.values()))),
        seconds_setup=round(t_train - t0, 3), seconds_train=round(t_test - t_train, 3),
        seconds_test=round(time.perf_counter() - t_test, 3), device=str(device),
    )
    return metrics, test_q, per


def run_taxonomy_job(stimuli, embeddings, lm_name: str, lm_spec: dict, condition: dict, options: dict, *,
                     seed: int, device: str = "auto", threads: int = 1, progress: bool = False,
                     labels: dict) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """The ``taxonomy`` rule's work on opened stores: load the LM, run :func:`run_condition`, label the result.

    Returns ``(metrics, answers, per_hypernym)`` as :func:`run_condition`, the metrics with the run's labels,
    seed, threads and total seconds added.
    """
    import time

    from ..models.base import pick_device

    t0 = time.perf_counter()
    torch.set_num_threads(int(threads))
    dev = pick_device(device)
    lm, tokenizer = load_lm(lm_name, lm_spec, dev)
    metrics, answers, per = run_condition(stimuli, embeddings, lm, tokenizer, condition, options, seed=seed,
                                          device=dev, progress=progress)
    metrics.update(vision=labels["vision"], lm=labels["lm"], condition_name=labels["condition"], seed=int(seed),
                   threads=int(threads), seconds_total=round(time.perf_counter() - t0, 3))
    print(f"taxonomy {labels}: F1 unseen {metrics['f1_unseen']:.3f}, seen {metrics['f1_seen']:.3f}, "
          f"train {metrics['seconds_train']:.1f} s, total {metrics['seconds_total']:.1f} s")
    return metrics, answers, per


@torch.no_grad()
def text_oracle(lm, tokenizer, texts: Sequence[str], *, answers: Sequence[str] = (" yes", " no"),
                device: str | torch.device = "cpu", bf16: bool = False, batch_size: int = 64) -> np.ndarray:
    """``logit(yes) - logit(no)`` of the frozen LM for each whole question text, no image prefix: what the
    LM answers when the concept is named in words (the language-only ceiling of the projector runs)."""
    qa = PrefixQA(lm, tokenizer, answers=answers, template="{word}").to(device)  # each "word" is a whole text
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start:start + batch_size])
        with _autocast(device, bf16):
            out.append(qa(torch.zeros(len(chunk), 0, qa.dim, device=device), chunk).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def run_oracle_job(stimuli, lm_name: str, lm_spec: dict, options: dict, *, seed: int = 0, device: str = "auto",
                   threads: int = 1) -> tuple[dict, pd.DataFrame]:
    """The ``taxonomy_oracle`` rule's work: every concept's hypernym questions asked of the pretrained LM with
    the concept named in the text (``options["oracle_template"]``). Returns the scores
    (:func:`taxonomy.oracle_scores` plus labels) and the answered questions."""
    import time

    from ..models.base import pick_device
    from .taxonomy import oracle_questions, oracle_scores

    options = {**RUN_DEFAULTS, **options}
    t0 = time.perf_counter()
    torch.set_num_threads(int(threads))
    dev = pick_device(device)
    table = stimuli_table(stimuli)
    tax = build_taxonomy(table, options)
    _, test_img = image_split(table, tax, options)
    questions = oracle_questions(tax, test_img, seed, options["oracle_template"])
    lm, tokenizer = load_lm(lm_name, lm_spec, dev)
    questions["score"] = text_oracle(lm, tokenizer, questions["text"].tolist(), answers=options["answers"],
                                     device=dev, bf16=options["bf16"])
    metrics = {**oracle_scores(questions), "lm": lm_name, "template": options["oracle_template"], "seed": int(seed),
               "seconds_total": round(time.perf_counter() - t0, 3)}
    print(f"taxonomy oracle {lm_name}: F1 {metrics['f1']:.3f}, AUC {metrics['auc']:.3f} over "
          f"{metrics['n_questions']} questions")
    return metrics, questions
