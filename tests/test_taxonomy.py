"""The taxonomy analysis (study 002): concepts and hypernyms, the manipulations, the scores, and the
projector between frozen models (tiny random LM and synthetic features, so it runs in seconds)."""
import numpy as np
import pandas as pd
import pytest

from convergence.analyses.taxonomy import (
    Taxonomy,
    TaxonomyError,
    caption_noun,
    coherence,
    derangement,
    folder_taxonomy,
    hypernym_word,
    label_map,
    macro_f1,
    question,
    removed_concepts,
    test_questions as make_test_questions,
    training_questions,
)


def stamp_table():
    """Three categories, one with two sub-folders; 'misc' is excluded; 'tiny' has too few concepts."""
    rows = []
    for i in range(6):
        rows.append(("animals/mammals/m%d" % i, "A brown mammal%d." % i, "animals", "animals/mammals"))
    for i in range(5):
        rows.append(("animals/birds/b%d" % i, "A bird%d, flying." % i, "animals", "animals/birds"))
    for i in range(7):
        rows.append(("food/fruit/f%d" % i, "A pair of fruit%d." % i, "food", "food/fruit"))
    for i in range(6):
        rows.append(("misc/x%d" % i, "A thing%d." % i, "misc", "misc"))
    for i in range(2):
        rows.append(("tiny/t%d" % i, "A tiny%d." % i, "tiny", "tiny"))
    return pd.DataFrame(rows, columns=["stimulus", "caption", "label", "subcategory"])


@pytest.fixture
def tax():
    return folder_taxonomy(stamp_table(), min_concepts=5, exclude=["misc*"])


def test_caption_nouns_and_hypernym_words():
    assert caption_noun("A red kangaroo.") == "kangaroo"
    assert caption_noun("A pair of cherries.") == "cherries"
    assert caption_noun("An orange, also called a bitter orange.") == "orange"
    assert caption_noun("A \u201cGranny Smith\u201d apple.") == "apple"
    assert hypernym_word("animals/mammals") == "mammal"
    assert hypernym_word("town/roadsigns") == "road sign"
    assert hypernym_word("animals/fish") == "fish"
    assert hypernym_word("animals/mammals", {"mammals": "beast"}) == "beast"
    assert question("insect") == "Is there an insect in the image?"
    assert question("bird") == "Is there a bird in the image?"


def test_hypernym_picking_rule(tax):
    # animals 11, mammals 6, birds 5, food 7, fruit 7 kept; misc excluded; tiny below min_concepts
    assert tax.words == ["animal", "bird", "food", "fruit", "mammal"]
    assert len(tax.concepts) == 18 and not any(c.startswith(("misc", "tiny")) for c in tax.concepts)
    assert tax.hypernyms["animals/mammals/m0"] == ("animal", "mammal")
    assert tax.names["animals/birds/b3"] == "bird3" and tax.names["food/fruit/f1"] == "fruit1"
    strict = folder_taxonomy(stamp_table(), min_concepts=6, exclude=["misc*"])
    assert "bird" not in strict.words and strict.hypernyms["animals/birds/b0"] == ("animal",)
    with pytest.raises(TaxonomyError, match="min_concepts"):
        folder_taxonomy(stamp_table(), min_concepts=50)


def test_derangement_has_no_fixed_point():
    for seed in range(200):
        n = 2 + seed % 7
        p = derangement(n, np.random.default_rng(seed))
        assert sorted(p) == list(range(n)) and not np.any(p == np.arange(n))
    with pytest.raises(TaxonomyError):
        derangement(1, np.random.default_rng(0))


def test_label_maps(tax):
    within = label_map(tax, "within", seed=3)
    assert all(within[c] != c and tax.group(within[c]) == tax.group(c) for c in tax.concepts)
    assert sorted(within.values()) == sorted(tax.concepts)
    across = label_map(tax, "across", seed=3)
    assert sorted(across.values()) == sorted(tax.concepts)
    assert any(tax.group(across[c]) != tax.group(c) for c in tax.concepts)
    assert label_map(tax, "none", 0) == {c: c for c in tax.concepts}
    with pytest.raises(TaxonomyError, match="allowed"):
        label_map(tax, "sideways", 0)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 1.0])
def test_ablation_removes_exactly_the_hypernym_questions_of_the_removed_concepts(tax, fraction):
    mapping = {c: c for c in tax.concepts}
    images = {c: [2 * i, 2 * i + 1] for i, c in enumerate(tax.concepts)}
    removed = removed_concepts(tax, mapping, fraction, seed=1)
    groups = {}
    for c in tax.concepts:
        groups.setdefault(tax.group(c), []).append(c)
    for members in groups.values():  # round(f * n) of every hypernym set
        assert sum(c in removed for c in members) == int(np.floor(fraction * len(members) + 0.5))
    full = training_questions(tax, mapping, images, set(), seed=1)
    ablated = training_questions(tax, mapping, images, removed, seed=1)
    key = ["concept", "image", "word", "kind", "answer"]
    gone = full[full["concept"].isin(removed) & (full["kind"] == "hypernym")]
    expected = full.drop(gone.index)
    assert len(gone) > 0
    pd.testing.assert_frame_equal(ablated[key].reset_index(drop=True), expected[key].reset_index(drop=True))
    assert not ((ablated["kind"] == "hypernym") & ablated["concept"].isin(removed)).any()
    # the removed concepts keep their name questions; the test questions of the unseen split are theirs
    assert set(ablated.loc[ablated["kind"] == "name", "concept"]) == set(tax.concepts)
    test = make_test_questions(tax, mapping, images, removed, seed=1)
    assert set(test.loc[test["split"] == "unseen", "concept"]) == removed
    assert (test.groupby("split")["answer"].mean() == 0.5).all()  # as many negatives as positives


def test_dropped_hypernyms_are_never_asked(tax):
    mapping = {c: c for c in tax.concepts}
    images = {c: [i] for i, c in enumerate(tax.concepts)}
    removed = removed_concepts(tax, mapping, 0.0, seed=0, drop=["bird"])
    assert removed == set(tax.members("bird"))
    q = training_questions(tax, mapping, images, removed, seed=0, drop=["bird"])
    assert "bird" not in set(q["word"])
    with pytest.raises(TaxonomyError, match="unknown hypernym"):
        removed_concepts(tax, mapping, 0.0, seed=0, drop=["dragon"])


def test_macro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y, p = rng.random(50) < 0.5, rng.random(50) < 0.3
    assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro"))
    assert macro_f1([True, False], [True, False]) == 1.0


def test_coherence_is_the_mean_pairwise_cosine():
    x = np.random.default_rng(1).normal(size=(9, 4))
    rows = [0, 2, 3, 7]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    brute = np.mean([u[a] @ u[b] for a in rows for b in rows if a != b])
    assert coherence(x, {"g": rows})["g"] == pytest.approx(brute)


# ------------------------------------------------------------------------------- projector (torch)


def tiny_lm(seed=0):
    """A 2-layer Llama with a word-level tokenizer over the words the tests ask about."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["[UNK]", "Is", "there", "a", "an", "in", "the", "image", "?", "yes", "no", "animal", "fruit", "tool",
             "bird", "cat", "apple", "hammer"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      initializer_range=0.2)  # sharper attention than the default 0.02: a non-linear reader
    return LlamaForCausalLM(cfg).eval(), tokenizer


def planted(n_per=12, seed=0):
    """Synthetic image features: three categories, each a direction in feature space plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16)) * 3
    cats = np.repeat(np.arange(3), n_per)
    feats = (centres[cats] + rng.normal(size=(len(cats), 16))).astype(np.float32)
    words, images, answers = [], [], []
    names = ["animal", "fruit", "tool"]
    for i, c in enumerate(cats):
        for j, w in enumerate(names):
            words.append(w)
            images.append(i)
            answers.append(float(j == c))
    return feats, np.array(images), words, np.array(answers, np.float32)


def test_projector_learns_a_planted_mapping_and_leaves_the_frozen_models_bit_identical():
    import torch

    from convergence.analyses.taxonomy_train import PrefixQA, Projector, answer, train_projector

    lm, tokenizer = tiny_lm()
    encoder = torch.nn.Linear(16, 16)  # stands for the frozen vision model whose features are cached
    lm_before = {k: v.clone() for k, v in lm.state_dict().items()}
    enc_before = {k: v.clone() for k, v in encoder.state_dict().items()}
    qa = PrefixQA(lm, tokenizer, answers=["yes", "no"])
    raw, images, words, answers = planted()
    with torch.no_grad():
        feats = encoder(torch.as_tensor(raw)).numpy()
    projector = Projector(16, qa.dim, k=2, kind="mlp", hidden=32, scale=qa.embedding_scale())
    proj_before = [p.detach().clone() for p in projector.parameters()]
    before = answer(qa, projector, feats, images, words) > 0
    losses = train_projector(qa, projector, feats, images, words, answers, epochs=40, batch_size=27, lr=1e-2, seed=0)
    after = answer(qa, projector, feats, images, words) > 0
    assert losses[-1] < 0.5 * losses[0]
    assert np.mean(after == (answers > 0.5)) >= 0.95 > np.mean(before == (answers > 0.5))
    # new images of the same categories (the planted mapping generalises)
    test_raw, test_images, test_words, test_answers = planted(seed=0)
    test_raw = test_raw + np.random.default_rng(5).normal(scale=0.3, size=test_raw.shape).astype(np.float32)
    with torch.no_grad():
        test_feats = encoder(torch.as_tensor(test_raw)).numpy()
    assert np.mean((answer(qa, projector, test_feats, test_images, test_words) > 0) == (test_answers > 0.5)) >= 0.9
    for k, v in lm.state_dict().items():
        assert torch.equal(v, lm_before[k]), k
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, enc_before[k]), k
    assert all(p.grad is None for p in lm.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(projector.parameters(), proj_before))


def test_random_lm_control_has_the_architecture_and_other_weights():
    import torch

    from convergence.analyses.taxonomy_train import random_like

    lm, _ = tiny_lm(seed=0)
    rand = random_like(lm, seed=1)
    assert type(rand) is type(lm) and rand.config.to_dict() == lm.config.to_dict()
    assert all(a.shape == b.shape for a, b in zip(rand.parameters(), lm.parameters()))
    assert not torch.equal(rand.model.layers[0].mlp.up_proj.weight, lm.model.layers[0].mlp.up_proj.weight)
    again = random_like(lm, seed=1)
    assert torch.equal(again.model.layers[0].mlp.up_proj.weight, rand.model.layers[0].mlp.up_proj.weight)


def synthetic_stores():
    """A stimuli store with two variations of 18 concepts in 3 folders, and an embedding store of planted
    features (one direction per folder)."""
    import xarray as xr

    concepts = [("animals/cat%d" % i, "A cat%d." % i, "animals") for i in range(6)]
    concepts += [("food/apple%d" % i, "An apple%d." % i, "food") for i in range(6)]
    concepts += [("tools/hammer%d" % i, "A hammer%d." % i, "tools") for i in range(6)]
    ids = [f"{c}~v{j}" for c, _, _ in concepts for j in range(2)]
    rng = np.random.default_rng(0)
    centres = {"animals": rng.normal(size=8) * 3, "food": rng.normal(size=8) * 3, "tools": rng.normal(size=8) * 3}
    feats = np.stack([centres[lab] + rng.normal(size=8) for _, _, lab in concepts for _ in range(2)]).astype(np.float32)
    stimuli = xr.Dataset(
        {"concept": ("stimulus", np.array([c for c, _, _ in concepts for _ in range(2)], object)),
         "variation": ("stimulus", np.array([j for _ in concepts for j in range(2)])),
         "caption": ("stimulus", np.array([cap for _, cap, _ in concepts for _ in range(2)], object)),
         "label": ("stimulus", np.array([lab for _, _, lab in concepts for _ in range(2)], object))},
        coords={"stimulus": np.array(ids, object)})
    emb = xr.Dataset({"last": (("stimulus", "feature_last"), feats)}, coords={"stimulus": np.array(ids, object)},
                     attrs={"model": "synthetic", "layers": ["last"]})
    return stimuli, emb


def test_run_condition_end_to_end_on_synthetic_stores():
    """Stores in, metrics out: a stimuli store with variations and an embedding store of planted features."""
    from convergence.analyses.taxonomy_train import run_condition

    lm, tokenizer = tiny_lm()
    stimuli, emb = synthetic_stores()
    options = {"min_concepts": 3, "names": {"animals": "animal", "tools": "tool"}, "epochs": 2, "batch_size": 16,
               "eval_concepts": 10, "answers": ["yes", "no"]}
    metrics, answers, per = run_condition(stimuli, emb, lm, tokenizer, {"remove": 0.5}, options, seed=0)
    assert metrics["n_concepts"] == 18 and metrics["hypernyms"] == ["animal", "food", "tool"]
    assert metrics["n_removed"] == 9 and set(answers["split"]) == {"unseen", "seen"}
    assert (answers["image"] % 2 == 1).all()  # tested on the held-out variation
    assert 0 <= metrics["f1_unseen"] <= 1 and list(per["hypernym"]) == ["animal", "food", "tool"]
    assert metrics["coherence_mean"] == pytest.approx(metrics["coherence_original_mean"])
    shuffled, _, per_shuffled = run_condition(stimuli, emb, lm, tokenizer, {"remove": 0.5, "shuffle": "across"},
                                              options, seed=0)
    assert shuffled["coherence_mean"] < metrics["coherence_mean"]
    with pytest.raises(ValueError, match="unknown field"):
        run_condition(stimuli, emb, lm, tokenizer, {"removed": 0.5}, options, seed=0)


def test_text_oracle_is_the_lms_own_yes_no_logit_difference():
    """The language-only ceiling scores whole texts in padded batches exactly as one unpadded forward pass of
    the LM does (last position, logit of yes minus logit of no)."""
    import torch

    from convergence.analyses.taxonomy_train import text_oracle

    lm, tokenizer = tiny_lm()
    texts = ["Is a cat an animal ?", "Is there an apple in the image ?", "Is a hammer a tool ?", "Is a bird ?"]
    got = text_oracle(lm, tokenizer, texts, answers=["yes", "no"], batch_size=3)
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    with torch.no_grad():
        want = [float((lambda z: z[yes] - z[no])(lm(torch.tensor([tokenizer(t)["input_ids"]])).logits[0, -1]))
                for t in texts]
    assert np.allclose(got, want, atol=1e-5)
    assert len(set(np.round(got, 6))) == len(texts)  # the texts are told apart


def test_oracle_job_asks_every_concept_its_own_hypernyms_with_the_concept_named(monkeypatch):
    import convergence.analyses.taxonomy_train as T
    from convergence.analyses.taxonomy import oracle_text

    stimuli, _ = synthetic_stores()
    monkeypatch.setattr(T, "load_lm", lambda name, spec, device: tiny_lm())
    options = {"min_concepts": 3, "names": {"animals": "animal", "tools": "tool"}, "answers": ["yes", "no"],
               "oracle_template": "Is {concept_article} {concept} {article} {word} ?"}
    metrics, questions = T.run_oracle_job(stimuli, "tiny", {}, options, seed=0, device="cpu")
    assert metrics["n_concepts"] == 18 and metrics["n_questions"] == len(questions) == 36
    assert (questions["image"] % 2 == 1).all()  # the held-out variation, as the conditions' test questions
    positives = questions[questions["answer"]]
    assert sorted(positives["concept"]) == sorted(set(questions["concept"]))
    assert all(w == {"animals": "animal", "food": "food", "tools": "tool"}[c.split("/")[0]]
               for c, w in zip(positives["concept"], positives["word"]))
    assert questions["text"].iloc[0] == oracle_text(questions["name"].iloc[0], questions["word"].iloc[0],
                                                    options["oracle_template"])
    assert oracle_text("apple", "fruit") == "Question: Is an apple a fruit? Answer:"
    assert 0 <= metrics["f1"] <= 1 and 0 <= metrics["auc"] <= 1


def test_removal_figure_draws_the_ceiling_beside_the_runs(tmp_path):
    import pandas as pd

    from convergence.analyses.taxonomy import oracle_table
    from convergence.plots.taxonomy import plot_taxonomy

    summary = pd.DataFrame([{"vision": "v", "lm": "l", "lm_weights": w, "remove": r, "shuffle": "none", "drop": "",
                             "f1_unseen": 0.5, "f1_seen": 0.5} for w in ("pretrained", "random") for r in (0.1, 1.0)])
    path = tmp_path / "m.json"
    path.write_text('{"lm": "l", "f1": 0.62, "auc": 0.71, "n_questions": 10, "n_concepts": 5, "template": "t"}')
    oracle = oracle_table([str(path)])
    assert oracle.to_dict("records") == [{"lm": "l", "f1": 0.62, "auc": 0.71, "n_questions": 10, "n_concepts": 5,
                                          "template": "t"}]
    assert list(oracle_table([]).columns) == list(oracle.columns)
    out = [tmp_path / "removal.png", tmp_path / "removal.pdf"]
    plot_taxonomy("removal", {"summary": summary, "oracle": oracle}, out)
    assert all(p.stat().st_size > 0 for p in out)


# ------------------------------------------------------------------------------------------ workflow


@pytest.mark.workflow
def test_taxonomy_study_builds_dag(tmp_path):
    """studies/taxonomy.yaml plans every run of its grid (2 vision x 4 LMs x 17 conditions x 3 seeds) without the hub."""
    import re

    from test_workflow import study_plan

    text = study_plan("taxonomy", tmp_path)
    assert re.search(r"\btaxonomy\s+408\b", text) and re.search(r"\btaxonomy_aggregate\s+1\b", text), text[-3000:]
    assert re.search(r"\bembed\s+2\b", text) and re.search(r"figure_taxonomy_coherence\s+1\b", text)


def test_default_config_plans_the_reduced_grid():
    """The default config's taxonomy section: one vision model, SmolLM2, 8 conditions, one seed."""
    import yaml

    from conftest import ROOT
    from convergence.config import taxonomy_runs, validate_config

    cfg = validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()), base_dir=ROOT)
    runs = taxonomy_runs(cfg)
    assert len(runs) == 8 and {r[1] for r in runs} == {"smollm2_135m"}
    assert {cfg["taxonomy"]["conditions"][r[2]]["lm"] for r in runs} == {"pretrained", "random"}
    bad = {**cfg, "taxonomy": {**cfg["taxonomy"], "language_models": ["all_minilm_l6"]}}
    from convergence.config import ConfigError

    with pytest.raises(ConfigError, match="causal LM"):
        validate_config(bad, base_dir=ROOT)


def test_render_variations_are_seeded_and_labelled(tmp_path):
    from PIL import Image

    from convergence.stimuli import StimulusError, build_stimuli

    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            im = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
            im.paste((200, 20 * i, 50, 255), (5, 5, 30, 25))
            im.save(tmp_path / cls / f"{cls}{i}.png")
    spec = {"source": "image_folder", "path": str(tmp_path), "image_size": 32, "variations": {"n": 3}, "seed": 4}
    ds = build_stimuli("v", spec)
    assert ds.sizes["stimulus"] == 12 and ds.attrs["n_stimuli"] == 12
    assert list(ds["stimulus"].values[:3]) == ["cats/cats0~v0", "cats/cats0~v1", "cats/cats0~v2"]
    assert list(ds["concept"].values[:4]) == ["cats/cats0"] * 3 + ["cats/cats1"]
    assert list(ds["variation"].values[:4]) == [0, 1, 2, 0] and list(ds["label"].values[-1:]) == ["dogs"]
    again = build_stimuli("v", spec)
    np.testing.assert_array_equal(ds["image"].values, again["image"].values)
    images = ds["image"].values
    assert not np.array_equal(images[0], images[1])  # the renderings differ
    corners = images[:, 0, 0]  # the background colour, inside the drawn light range
    assert (corners >= 170).all()
    other = build_stimuli("v", {**spec, "seed": 5})
    assert not np.array_equal(other["image"].values, images)
    with pytest.raises(StimulusError, match="variations"):
        build_stimuli("v", {"source": "digits", "variations": {"n": 2}})
