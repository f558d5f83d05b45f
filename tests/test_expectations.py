"""Claims about a good model print a verdict, and stop a notebook only for a verified model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course_utils.embeddings import BUNDLED_MODEL_DIR, load_clip
from course_utils.expectations import CLAIMS, VERIFIED_MODELS, check, verified_model

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BUNDLED_ID = next(iter(VERIFIED_MODELS))


def _claims_checked_in(path: Path) -> list[str]:
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    return re.findall(r"""\bcheck\(\s*["']([^"']+)["']""", code)


def test_a_claim_that_holds_prints_a_tick_with_its_figure(capsys):
    assert check("03.red-circle-first", True, "any-model", "Widget A ranks 1, similarity 0.59") is True
    assert (
        capsys.readouterr().out == '✓ "red circular product" ranks Widget A first (Widget A ranks 1, similarity 0.59)\n'
    )


def test_a_claim_that_fails_for_an_unverified_model_prints_a_cross_and_where_to_read(capsys):
    assert check("03.red-circle-first", False, "some-other-clip@0123", "Widget A ranks 3") is False
    out = capsys.readouterr().out
    assert out.startswith("✗ ") and "not with this model (Widget A ranks 3)" in out
    assert "Reading similarity scores" in out


def test_a_claim_that_fails_for_a_verified_model_stops_the_notebook(capsys):
    with pytest.raises(AssertionError, match="bundled mini-CLIP.*Widget A ranks 3"):
        check("03.red-circle-first", False, BUNDLED_ID, "Widget A ranks 3")
    assert capsys.readouterr().out == ""


def test_an_embedder_is_recognised_by_its_model_id():
    class Embedder:
        model_id = BUNDLED_ID

    assert verified_model(Embedder()) is VERIFIED_MODELS[BUNDLED_ID]
    assert verified_model("mini-clip@000000000000") is None  # the same folder name with other weights


def test_an_unknown_claim_is_an_error():
    with pytest.raises(KeyError):
        check("03.no-such-claim", True, BUNDLED_ID, "")


def test_the_shipped_mini_clip_weights_are_the_verified_ones():
    # retraining the bundled model changes this id: its claims must then be verified again
    assert load_clip(str(BUNDLED_MODEL_DIR), device="cpu").model_id in VERIFIED_MODELS


def test_every_verified_claim_exists():
    for model in VERIFIED_MODELS.values():
        assert model.claims <= set(CLAIMS)


def test_notebooks_check_only_known_claims_and_every_claim_is_checked_somewhere():
    used = {claim for path in NOTEBOOKS for claim in _claims_checked_in(path)}
    assert used, "no notebook calls check()"
    assert used <= set(CLAIMS), f"unknown claims: {sorted(used - set(CLAIMS))}"
    assert set(CLAIMS) <= used, f"claims no notebook checks: {sorted(set(CLAIMS) - used)}"


def test_a_claim_is_checked_in_the_notebook_its_key_names():
    for path in NOTEBOOKS:
        for claim in _claims_checked_in(path):
            assert claim.split(".")[0] == path.name[:2], f"{path.name} checks {claim}"


def test_every_claim_points_to_a_section_of_its_notebook():
    headings = {}
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        headings.setdefault(path.name[:2], []).extend(re.findall(r"^#+ (.+)$", text, flags=re.M))
    for key, claim in CLAIMS.items():
        assert any(h.startswith(claim.section) for h in headings[key[:2]]), f"{key}: no section {claim.section!r}"
