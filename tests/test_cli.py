import json

import pytest

from course_utils.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_json_shape(cli_env, capsys):
    code, out, err = run(capsys, "search", "red circle", "-k", "3", "--json")
    assert code == 0
    data = json.loads(out)
    assert {"query", "model", "results", "match", "plan"} <= set(data) and data["query"] == "red circle"
    assert isinstance(data["match"], bool) and all(isinstance(r["weak"], bool) for r in data["results"])
    assert [r["rank"] for r in data["results"]] == [1, 2, 3]
    first = data["results"][0]
    assert {"rank", "name", "similarity", "path", "product"} <= set(first)
    assert set(first["product"]) >= {"name", "shape", "color", "color_name", "pattern", "price", "category"}
    sims = [r["similarity"] for r in data["results"]]
    assert sims == sorted(sims, reverse=True)


def test_ask_json_shape_and_cache_reuse(cli_env, capsys):
    code, out, _ = run(capsys, "ask", "What red products do you have?", "--json")
    assert code == 0
    data = json.loads(out)
    assert {"question", "answer", "provider", "llm_model", "used_rag", "results", "model", "query"} <= set(data)
    assert data["used_rag"] is True and data["provider"] == "offline" and len(data["results"]) == 3
    assert data["grounding"]["ok"] is True and data["grounding"]["unknown_products"] == []
    cached = sorted(p.name for p in (cli_env / "cache").rglob("*.npz"))
    assert len(cached) == 1
    mtime = next((cli_env / "cache").rglob("*.npz")).stat().st_mtime_ns
    assert run(capsys, "ask", "blue?", "--json")[0] == 0
    assert next((cli_env / "cache").rglob("*.npz")).stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_ask_without_rag(cli_env, capsys):
    code, out, _ = run(capsys, "ask", "What red products do you have?", "--no-rag", "--json")
    data = json.loads(out)
    assert code == 0 and data["used_rag"] is False and data["results"] == []
    assert "no catalog knowledge" in data["answer"]


def test_human_output_is_a_table_and_an_answer(cli_env, capsys):
    code, out, _ = run(capsys, "ask", "What red products do you have?")
    assert code == 0
    assert "rank" in out and "similarity" in out and "Answer (offline" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "   "], "empty"),
        (["search", "red", "-k", "0"], "k must be at least 1"),
        (["search", "red", "--index", "does-not-exist.npz"], "not found"),
        (["index", "no-such-folder"], "not a folder"),
        (["catalog", "--catalog", "missing.json"], "not found"),
    ],
)
def test_user_errors_exit_2_with_one_line(cli_env, capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_catalog_then_index_then_search(cli_env, capsys, tmp_path):
    assert run(capsys, "catalog", "--out", str(tmp_path / "cat"))[0] == 0
    assert (tmp_path / "cat" / "catalog.json").is_file() and len(list((tmp_path / "cat").glob("*.png"))) == 8
    code, out, _ = run(capsys, "index", str(tmp_path / "cat"), "--out", str(tmp_path / "idx.npz"), "--json")
    assert code == 0 and json.loads(out)["indexed"] == 8
    code, out, _ = run(capsys, "search", "green triangle", "--index", str(tmp_path / "idx.npz"), "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 3


def test_index_from_another_model_is_refused(cli_env, capsys, tmp_path, tiny_clip_dir):
    import numpy as np

    from course_utils.catalog import default_catalog
    from course_utils.index import ImageIndex

    products = default_catalog()
    ImageIndex(np.eye(8, 16, dtype=np.float32), products, [f"{p.slug}.png" for p in products], "other-model").save(
        tmp_path / "other.npz"
    )
    code, _, err = run(capsys, "search", "red", "--index", str(tmp_path / "other.npz"), "--model", str(tiny_clip_dir))
    assert code == 2 and "built with model 'other-model'" in err


def test_long_query_is_cut_with_a_note(cli_env, capsys):
    code, out, _ = run(capsys, "search", "a red circle " * 40, "--json")
    data = json.loads(out)
    assert code == 0 and "CLIP reads only the first 77" in data["note"]
    code, out, _ = run(capsys, "search", "a red circle", "--json")
    assert json.loads(out)["note"] == ""


@pytest.mark.parametrize("query", ["赤い丸 🔴", "Ünïcödé ½ ∑ — red?", "\u200b red \u202e"])
def test_any_unicode_query_is_searched(cli_env, capsys, query):
    code, out, err = run(capsys, "search", query, "--json")
    assert code == 0, err
    assert len(json.loads(out)["results"]) == 3


def test_ask_with_a_condition_and_the_shop_view_adds_fields(cli_env, capsys):
    code, out, _ = run(
        capsys, "ask", "What red products do you have?", "--context", "images", "--metadata", "shop", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert {"question", "answer", "provider", "llm_model", "used_rag", "results", "model", "query"} <= set(data)
    assert (data["condition"], data["metadata"]) == ("images", "shop")
    assert data["sent"]["images"] == len(data["results"]) == 3
    assert data["sent"]["image_tokens_source"] == "not reported"
    assert "seen in image" in data["answer"], "the offline answerer reads the pictures it is sent"
    code, out, _ = run(capsys, "ask", "What red products do you have?", "--context", "none", "--json")
    assert json.loads(out)["condition"] == "none" and json.loads(out)["results"] == []
    code, out, _ = run(capsys, "ask", "red?", "--context", "all-images")
    assert code == 0 and "Sent (all-images, full rows): 8 image(s)" in out


def test_ablation_json_has_one_object_per_condition(cli_env, capsys, tmp_path):
    out_file = tmp_path / "runs" / "ablation.json"
    code, out, err = run(capsys, "ablation", "--per-type", "1", "--json", "--out", str(out_file))
    assert code == 0 and "question 1/" in err
    data = json.loads(out)
    assert data == json.loads(out_file.read_text()), "--out keeps the same report"
    assert data["metadata"] == "shop" and data["catalog"] == "default"
    conditions = [c["condition"] for c in data["conditions"]]
    assert conditions == ["none", "metadata", "images", "both", "all-images", "random"]
    for entry in data["conditions"]:
        assert {"accuracy", "precision", "recall", "invented_rate", "n", "by_type"} <= set(entry)
        assert set(entry["by_type"]) == {"color", "shape", "pattern", "combination", "price", "category", "absent"}
    code, out, _ = run(capsys, "ablation", "--per-type", "1", "--conditions", "metadata,both", "--metadata", "full")
    assert code == 0 and "accuracy by condition and question type" in out and "\nrandom" not in out


def test_ablation_takes_a_question_file_and_a_catalog(cli_env, capsys, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"query": "Which products are green?", "relevant": ["Gadget X"], "type": "color"}))
    code, out, _ = run(capsys, "ablation", "--questions", str(questions), "--conditions", "images", "--json")
    assert code == 0 and json.loads(out)["n_questions"] == 1
    assert run(capsys, "catalog", "--generate", "12", "--seed", "3", "--out", str(tmp_path / "gen"))[0] == 0
    code, out, _ = run(
        capsys, "ablation", "--catalog", str(tmp_path / "gen" / "catalog.json"), "--per-type", "1", "--json"
    )
    assert code == 0 and json.loads(out)["catalog_products"] == 12


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ablation", "--conditions", "none,pixels"], "Unknown condition 'pixels'"),
        (["ablation", "--per-type", "0"], "at least 1 question"),
        (["ablation", "--questions", "missing.jsonl"], "not found"),
        (["ask", "red?", "--no-rag", "--context", "images"], "--no-rag is --context none"),
        (["catalog", "--generate", "0"], "1 to 1000 products"),
    ],
)
def test_ablation_user_errors_are_one_line(cli_env, capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- search with a picture


def _catalog_png(cli_env, capsys):
    assert run(capsys, "catalog", "--out", str(cli_env / "cat"))[0] == 0
    return cli_env / "cat" / "gadget_y.png"


def test_search_by_image_json_shape(cli_env, capsys):
    picture = _catalog_png(cli_env, capsys)
    code, out, err = run(capsys, "search", "--image", str(picture), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"query", "query_image", "model", "results", "match", "plan", "note"} <= set(data)
    assert data["query_image"] == str(picture) and data["query"] == "" and data["plan"]["name"] == "image"
    first = data["results"][0]
    assert first["name"] == "Gadget Y" and first["exact"] is True and first["similarity"] == 1.0
    assert [r["rank"] for r in data["results"]] == [1, 2, 3]
    assert sum(r["exact"] for r in data["results"]) == 1


def test_search_by_image_and_words_with_a_weight(cli_env, capsys):
    picture = _catalog_png(cli_env, capsys)
    code, out, _ = run(capsys, "search", "--image", str(picture), "in red", "--weight", "0.8", "--json")
    data = json.loads(out)
    assert code == 0 and data["query"] == "in red" and data["plan"]["name"] == "image + words"
    assert "words weight 0.80" in data["note"]
    code, out, _ = run(capsys, "search", "--image", str(picture), "in red")
    assert code == 0 and "image" in out and "rank" in out


def test_ask_with_an_image_json_and_text(cli_env, capsys):
    picture = _catalog_png(cli_env, capsys)
    code, out, err = run(capsys, "ask", "Do you have something like this?", "--image", str(picture), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["query_image"] == str(picture) and data["used_rag"] is True and data["images_sent"] == 4
    assert data["results"][0]["exact"] is True and "most like your photo is Gadget Y" in data["answer"]
    assert data["grounding"]["ok"]
    code, out, _ = run(capsys, "ask", "--image", str(picture), "--no-rag", "--json")
    data = json.loads(out)
    assert code == 0 and data["results"] == [] and data["query_image"] == str(picture)
    assert data["question"] == "Do you have something like this?" and data["images_sent"] == 1
    code, out, _ = run(capsys, "ask", "Do you have this in red?", "--image", str(picture))
    assert code == 0 and f"photo {picture}" in out and "plan image + words" in out and "Answer (offline" in out


def test_text_search_json_names_no_query_image(cli_env, capsys):
    code, out, _ = run(capsys, "search", "red circle", "--json")
    assert code == 0 and json.loads(out)["query_image"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "--image", "no-such.jpg"], "no-such.jpg cannot be used: file not found"),
        (["search", "--image", "NOTES"], "not an image"),
        (["search", "--image", "EMPTY"], "empty file"),
        (["search", "--image", "."], "cannot be used: is a directory"),
        (["ask", "like this?", "--image", "no-such.jpg"], "file not found"),
        (["ask", "like this?", "--image", "NOTES", "--no-rag"], "not an image"),
        (["ask"], "Give a question, --image PATH, or both"),
        (["search"], "Give a query, --image PATH, or both"),
        (["search", "red", "--weight", "0.5"], "give --image too"),
        (["search", "--image", "PICTURE", "blue", "--weight", "2"], "between 0 and 1"),
    ],
)
def test_bad_pictures_exit_2_with_one_line(cli_env, capsys, argv, message):
    (cli_env / "notes.txt").write_text("not a picture")
    (cli_env / "empty.png").write_bytes(b"")
    picture = _catalog_png(cli_env, capsys)
    names = {"NOTES": str(cli_env / "notes.txt"), "EMPTY": str(cli_env / "empty.png"), "PICTURE": str(picture)}
    code, out, err = run(capsys, *[names.get(a, a) for a in argv])
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
