import json

import numpy as np
import pytest

from sashie.encoders import DEMO_MODEL, DEMO_MODEL_DIR, load_encoder
from sashie.encoders.registry import SHIPPED
from sashie.eval.bench import bench, format_table
from sashie.eval.bench_adapt import ROUNDS, SHOWN
from sashie.eval.world.train import main as train_main

from conftest import run_cli


def test_the_demo_model_is_a_plain_hugging_face_clip():
    from transformers import AutoTokenizer, CLIPModel

    size = sum(f.stat().st_size for f in DEMO_MODEL_DIR.iterdir())
    assert size <= 40 * 2**20
    record = json.loads((DEMO_MODEL_DIR / "TRAINING.json").read_text())
    assert {"command", "seed", "samples", "train_seconds", "hardware"} <= set(record)
    model = CLIPModel.from_pretrained(DEMO_MODEL_DIR)  # without sashie's code
    tokens = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)(["鶴と松の挿絵"], return_tensors="pt")
    assert model.get_text_features(**tokens) is not None
    encoder = load_encoder(DEMO_MODEL)  # the hf: path, as for any user's model
    assert encoder.model_id.startswith("hf:sashie-demo@") and encoder.dim == 512


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_models_tokenizers_load_under_transformers_4_too(name):
    """transformers 5 writes a plain fast tokenizer's class as TokenizersBackend, a name
    version 4 (which pyproject.toml allows) cannot load; PreTrainedTokenizerFast both read."""
    config = json.loads((DEMO_MODEL_DIR.parent / name / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_a_new_library_uses_the_demo_model_by_default(tmp_path, pages):
    run_cli("index", tmp_path / "lib", pages, "-q")
    info = json.loads(run_cli("info", tmp_path / "lib", "--json").stdout)
    assert info["models"][0]["spec"] == DEMO_MODEL


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory):
    """The bench on a world drawn beforehand (`sashie world`), as one does for large ones."""
    from sashie.eval.world import make_world

    world = make_world(tmp_path_factory.mktemp("bench") / "world", pages=60, seed=5)
    keep = tmp_path_factory.getbasetemp() / "bench-keep"
    return bench(world=str(world), keep=str(keep), adapt=True, image_tuning=True)


@pytest.mark.slow
def test_the_image_tuning_experiment_measures_every_row_and_leaves_the_library(
    small_bench, tmp_path_factory
):
    """bench --image-tuning on oracle regions and on layout regions: every row's figures, in
    range, and no image version left behind in either library."""
    from sashie import Library

    f = small_bench.figures
    assert small_bench.image_tuning[0].label == "oracle regions"
    assert len(small_bench.image_tuning) == 2
    for experiment, prefix in zip(small_bench.image_tuning, ("imgtune", "imgtune_layout")):
        assert set(experiment.rows) == {"base", "arcmargin", "mcip", "mcip_rea"}
        assert experiment.classes >= 2 and experiment.captioned >= 2 * experiment.classes
        for row in experiment.rows:
            for name in ("i2i_map100", "i2i_r10", "t2i_p10"):
                assert 0.0 <= f[f"{prefix}_{name}_{row}"] <= 1.0
    workdir = tmp_path_factory.getbasetemp() / "bench-keep"
    for folder in ("library", "layout-library"):  # (the adaptation experiment's versions stay)
        with Library(workdir / folder) as lib:
            targets = [v["settings"]["target"] for v in lib.versions.list()["versions"]]
            assert "images" not in targets


@pytest.mark.slow
def test_seen_concepts_rank_their_illustrations_well_above_chance(small_bench):
    f = small_bench.figures
    assert f["pages"] == 60 and f["seed"] == 5 and f["items"] > 60  # from the world's world.json
    for name in (
        "text_p10_en_seen",
        "text_p10_ja_seen",
        "text_p10_en_heldout",
        "image_r10_cross_artist",
        "multi_p100_cv_d192",
        "multi_p100_random_mean_d192",
        "multi_p100_all",
        "zeroshot_acc_seen",
        "zeroshot_acc_heldout",
        "wording_ao10_en",
        "wording_p10_ja",
        "handwritten_ao10_en",
        "handwritten_p10_ja",
        "text_crop_share_top100",
    ):
        assert 0.0 <= f[name] <= 1.0, name
    # better than a random ranking by a wide margin (chance = the share of relevant items)
    chance = f["chance_precision_seen"]
    assert f["text_p10_en_seen"] > 3 * chance and f["text_map_en_seen"] > 2 * chance, f
    assert "multi-image query" in format_table(small_bench)


@pytest.mark.slow
def test_the_adaptation_experiment_reports_before_and_after(small_bench):
    f = small_bench.figures
    for prefix in ("adapt", "adapt_oracle", "adapt_newwords"):
        for name in (
            "heldout_p10_before",
            "heldout_p10_after",
            "seen_p10_before",
            "seen_p10_after",
            "adapter_only_R_02_heldout_p10",
            "text_only_seen_p10",
            "adapter_text_R_08_heldout_p10",
            "the_papers_recipe_heldout_p10",
            "without_examples_heldout_p10",
        ):
            assert 0.0 <= f[f"{prefix}_{name}"] <= 1.0, (prefix, name)
        assert 0 < f[f"{prefix}_pairs"] <= 300  # at most 30 captions a concept, 300 in all
        assert 0 < f[f"{prefix}_concepts_captioned"] <= 12
    _layout, oracle, new_words = small_bench.adapt
    for experiment in small_bench.adapt:  # the annotator looks at most ROUNDS pages a concept
        assert experiment.judged <= ROUNDS * SHOWN * experiment.concepts
    assert [r["name"] for r in oracle.rows][:2] == ["before", "adapter + text, R 0.2"]
    assert len(oracle.rows) == 8 and new_words.taught == "new words"
    table = format_table(small_bench)
    assert "held-out P@10 en" in table and "new words P@10 en" in table


def test_invented_words_are_new_and_come_in_both_scripts():
    from sashie.eval.bench_adapt import invented_words

    taken = {"karimo", "kamo"}
    words = invented_words(["a", "b", "c"], seed=1, taken=set(taken))
    assert words == invented_words(["a", "b", "c"], seed=1, taken=set(taken))
    assert len({en for en, _ in words.values()}) == 3
    for en, ja in words.values():
        assert en.isascii() and en not in taken and all("ァ" <= ch <= "ヶ" for ch in ja)


@pytest.mark.slow
def test_the_training_script_makes_a_loadable_model(tmp_path):
    out = tmp_path / "model"
    train_main(["--out", str(out), "--samples", "200", "--minutes", "0.05", "--seed", "3"])
    encoder = load_encoder(f"hf:{out}")
    vectors = encoder.encode_texts(["an illustration of a cat", "猫の挿絵"])
    assert vectors.shape == (2, 512) and np.isfinite(vectors).all()
    assert json.loads((out / "TRAINING.json").read_text())["steps"] >= 1
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # transformers 4 reads it


def test_the_paraclip_stage_tunes_the_text_tower_only(tmp_path, tiny_clip):
    """The demo model's ParaCLIP stage (train_para.py) on a tiny CLIP: the image tower and the
    logit scale are untouched, so a library's stored vectors stay valid; the text tower moves."""
    import torch
    from transformers import CLIPModel

    from sashie.eval.world.train_para import main as stage_main

    out = tmp_path / "para"
    options = ["--samples", "80", "--steps", "3", "--terms", "image,first,second", "--lr", "1e-3"]
    stage_main(["--base", str(tiny_clip), "--out", str(out), *options])
    before = CLIPModel.from_pretrained(tiny_clip).state_dict()
    after = CLIPModel.from_pretrained(out).state_dict()
    text = ("text_model.", "text_projection.")
    for name, tensor in before.items():
        if not name.startswith(text):
            assert torch.equal(tensor, after[name]), name
    assert not torch.equal(before["text_projection.weight"], after["text_projection.weight"])
    record = json.loads((out / "TRAINING.json").read_text())["paraclip"]
    assert record["settings"]["terms"] == ["image", "first", "second"]
    assert record["paraphrased_samples"] > 0 and len(record["loss_every_50_steps"]) == 1


@pytest.mark.slow
def test_the_mcip_stage_tunes_the_image_tower_only(tmp_path, tiny_clip):
    """The demo model's MCIP stage (train_mcip.py) on a tiny CLIP without Re-A: the text tower
    is bit-identical (text queries give the very same vectors), the image tower moves, and the
    loss curve is saved as a picture; with --realign-steps the text tower moves too."""
    import torch
    from transformers import CLIPModel

    from sashie.eval.world.train_mcip import main as stage_main

    out = tmp_path / "mcip"
    options = ["--samples", "120", "--steps", "3", "--lr", "1e-3", "--captions", "2"]
    stage_main(["--base", str(tiny_clip), "--out", str(out), *options])
    before = CLIPModel.from_pretrained(tiny_clip).state_dict()
    after = CLIPModel.from_pretrained(out).state_dict()
    image = ("vision_model.", "visual_projection.")
    for name, tensor in before.items():
        if not name.startswith(image):
            assert torch.equal(tensor, after[name]), name
    assert not torch.equal(before["visual_projection.weight"], after["visual_projection.weight"])
    record = json.loads((out / "TRAINING.json").read_text())["mcip"]
    assert record["settings"]["captions"] == 2 and record["class_samples"] > 0
    assert len(record["loss_every_25_steps"]) == 1 and not record["realign_loss_every_25_steps"]
    assert (out / "loss.png").stat().st_size > 1000

    realigned = tmp_path / "mcip-rea"
    stage_main(
        ["--base", str(tiny_clip), "--out", str(realigned), *options, "--realign-steps", "2"]
    )
    moved = CLIPModel.from_pretrained(realigned).state_dict()
    assert not torch.equal(before["text_projection.weight"], moved["text_projection.weight"])


def test_the_image_search_demo_model_shares_the_text_tower():
    """sashie-demo-mcip loads by name; its text side is sashie-demo's (the MCIP stage locks
    it), so a text query gives the same vector with either model, and only the image side
    differs."""
    import torch
    from transformers import CLIPModel

    tuned_encoder = load_encoder("sashie-demo-mcip")
    assert tuned_encoder.model_id.startswith("hf:sashie-demo-mcip@")
    texts = ["an illustration of a crane", "鶴の挿絵"]
    assert np.array_equal(
        tuned_encoder.encode_texts(texts), load_encoder(DEMO_MODEL).encode_texts(texts)
    )
    base = CLIPModel.from_pretrained(DEMO_MODEL_DIR).state_dict()
    tuned = CLIPModel.from_pretrained(DEMO_MODEL_DIR.parent / "sashie-demo-mcip").state_dict()
    image = ("vision_model.", "visual_projection.")
    for name, tensor in base.items():
        assert torch.equal(tensor, tuned[name]) or name.startswith(image), name
    assert not torch.equal(base["visual_projection.weight"], tuned["visual_projection.weight"])
    record = json.loads((DEMO_MODEL_DIR.parent / "sashie-demo-mcip" / "TRAINING.json").read_text())
    assert record["mcip"]["settings"]["lr"] == 3e-3


def test_the_paraphrase_robust_demo_model_shares_the_image_tower():
    """sashie-demo-para loads by name; its image side is sashie-demo's, so their image
    vectors are the same and only the text side differs."""
    import torch
    from transformers import CLIPModel

    para = load_encoder("sashie-demo-para")
    assert para.model_id.startswith("hf:sashie-demo-para@") and para.dim == 512
    base = CLIPModel.from_pretrained(DEMO_MODEL_DIR).state_dict()
    folder = DEMO_MODEL_DIR.parent / "sashie-demo-para"
    tuned = CLIPModel.from_pretrained(folder).state_dict()
    text = ("text_model.", "text_projection.")
    for name, tensor in base.items():
        same = torch.equal(tensor, tuned[name])
        assert same or name.startswith(text), name
    assert not torch.equal(base["text_projection.weight"], tuned["text_projection.weight"])
    record = json.loads((folder / "TRAINING.json").read_text())
    assert record["paraclip"]["base"].startswith("hf:sashie-demo@")


def test_the_reading_demo_model_loads_by_name_and_credits_its_dictionaries():
    """sashie-demo-reader: trained beside WordNet, JMdict, CLDR and Openclipart (issue 37);
    its record names each source's licence, and its tokenizer has read their words."""
    from transformers import AutoTokenizer

    folder = DEMO_MODEL_DIR.parent / "sashie-demo-reader"
    record = json.loads((folder / "TRAINING.json").read_text())
    credits = " ".join(record["language"]["credits"])
    assert all(name in credits for name in ("WordNet", "JMdict", "Openclipart", "CLDR"))
    assert record["preset"] == "reader" and "--lexicon" in record["command"]
    encoder = load_encoder("sashie-demo-reader")
    assert encoder.model_id.startswith("hf:sashie-demo-reader@") and encoder.dim == 512
    reader = AutoTokenizer.from_pretrained(folder)
    plain = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    words = "a long-legged wading bird"
    assert len(reader(words)["input_ids"]) < len(plain(words)["input_ids"])
