"""Search with a picture: the query image, picture + words, the exact match, refusal, perturbations."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from course_utils.calibration import (
    absent_pictures,
    calibrate_image_refusal,
    choose_threshold,
    image_refusal_calibration,
    present_pictures,
)
from course_utils.catalog import COLOR_HEX, SHAPES, Product, default_catalog, render_product
from course_utils.errors import CourseError
from course_utils.index import ImageIndex
from course_utils.perturbations import PERTURBATIONS, perturb
from course_utils.query_views import (
    VIEW_ROTATIONS,
    embed_picture_views,
    frame_foreground,
    picture_views,
    view_similarities,
)
from course_utils.retrieval import (
    TEXT_WEIGHT,
    Retrieval,
    compose_query,
    open_query_image,
    retrieve,
    retrieve_by_image,
)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- the query picture


def test_a_path_bytes_and_a_pil_image_find_the_same_hits(tiny_index, tiny_embedder):
    path = tiny_index.paths[3]
    by_path = retrieve_by_image(path, tiny_index, tiny_embedder, k=4)
    with open(path, "rb") as fh:
        by_bytes = retrieve_by_image(fh.read(), tiny_index, tiny_embedder, k=4)
    by_pil = retrieve_by_image(Image.open(path), tiny_index, tiny_embedder, k=4)
    assert isinstance(by_path, Retrieval) and by_path.query_image == str(path)
    assert by_bytes.query_image.startswith("uploaded image (") and by_pil.query_image == "a PIL image"
    for found in (by_bytes, by_pil):
        assert [h.path for h in found] == [h.path for h in by_path]
        assert np.allclose([h.similarity for h in found], [h.similarity for h in by_path], atol=1e-5)


def test_the_query_picture_in_the_index_is_the_exact_hit_once(tiny_index, tiny_embedder):
    for row in range(len(tiny_index)):
        found = retrieve_by_image(tiny_index.paths[row], tiny_index, tiny_embedder, k=len(tiny_index))
        assert found[0].path == tiny_index.paths[row] and found[0].exact  # not dropped...
        assert [h.path for h in found].count(tiny_index.paths[row]) == 1  # ...nor duplicated
        assert sum(h.exact for h in found) == 1 and found.match and not found[0].weak
        assert found[0].similarity == pytest.approx(1.0, abs=1e-4)
        assert len(found) == len(tiny_index) and [h.rank for h in found] == list(range(1, len(tiny_index) + 1))
        sims = [h.similarity for h in found]
        assert sims == sorted(sims, reverse=True)


def test_a_near_copy_is_not_exact(tiny_index, tiny_embedder):
    """Exact means the same pixels: a JPEG re-save of a catalog image is a (strong) hit, not 'exact'."""
    picture = Image.open(tiny_index.paths[0]).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=95)
    found = retrieve_by_image(buffer.getvalue(), tiny_index, tiny_embedder, k=3)
    assert not any(h.exact for h in found)


def test_an_unrelated_picture_has_no_exact_hit(tiny_index, tiny_embedder):
    other = Image.new("RGB", (64, 64), (10, 200, 30))
    found = retrieve_by_image(other, tiny_index, tiny_embedder, k=2)
    assert not any(h.exact for h in found)


@pytest.mark.parametrize(
    "image, message",
    [
        ("no-such-photo.jpg", "no-such-photo.jpg cannot be used: file not found"),
        (b"", "empty file"),
        (b"this is text, not a picture", "not an image"),
        (12, "not a picture: pass a file path"),
    ],
)
def test_unusable_query_pictures_are_one_clear_error(tiny_index, tiny_embedder, image, message):
    with pytest.raises(CourseError) as err:
        retrieve_by_image(image, tiny_index, tiny_embedder)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_named_upload_is_named_in_the_error():
    with pytest.raises(CourseError) as err:
        open_query_image(b"%PDF-1.4 not a picture", name="receipt.pdf")
    assert str(err.value).startswith("The query image receipt.pdf cannot be used: not an image")


def test_bad_k_weight_plan_and_model_are_refused(tiny_index, tiny_embedder):
    path = tiny_index.paths[0]
    with pytest.raises(CourseError, match="k must be at least 1"):
        retrieve_by_image(path, tiny_index, tiny_embedder, k=0)
    for weight in (-0.1, 1.5, float("nan")):
        with pytest.raises(CourseError, match="weight must be between 0 and 1"):
            retrieve_by_image(path, tiny_index, tiny_embedder, text="blue", weight=weight)
    with pytest.raises(CourseError, match="Unknown retrieval plan"):
        retrieve_by_image(path, tiny_index, tiny_embedder, plan="magic")
    other = ImageIndex(tiny_index.embeddings, tiny_index.products, tiny_index.paths, "another-model")
    with pytest.raises(CourseError, match="built with model 'another-model'"):
        retrieve_by_image(path, other, tiny_embedder)


# --------------------------------------------------------------------------- picture + words


def test_compose_query_mixes_the_two_similarities_linearly(tiny_index, tiny_embedder):
    picture = tiny_embedder.embed_images([tiny_index.paths[2]])[0]
    words = tiny_embedder.embed_texts(["blue"])[0]
    assert np.allclose(compose_query(picture, words, 0.0), picture, atol=1e-6)
    assert np.allclose(compose_query(picture, words, 1.0), words, atol=1e-6)
    for weight in (0.3, TEXT_WEIGHT):
        mixed = tiny_index.similarities(compose_query(picture, words, weight))
        added = (1 - weight) * tiny_index.similarities(picture) + weight * tiny_index.similarities(words)
        # the same ranking: the mixed vector's cosine is the weighted sum over one common length
        ratio = mixed / added
        assert np.allclose(ratio, ratio[0], rtol=1e-4)
        assert np.linalg.norm(compose_query(picture, words, weight)) == pytest.approx(1.0, abs=1e-5)


def test_the_weight_runs_from_the_picture_alone_to_the_words_alone(tiny_index, tiny_embedder):
    path, k = tiny_index.paths[5], len(tiny_index)
    picture_only = retrieve_by_image(path, tiny_index, tiny_embedder, k=k, plan="none")
    at_zero = retrieve_by_image(path, tiny_index, tiny_embedder, k=k, text="green", weight=0.0, plan="none")
    at_one = retrieve_by_image(path, tiny_index, tiny_embedder, k=k, text="green", weight=1.0, plan="none")
    words_only = retrieve("green", tiny_index, tiny_embedder, k=k, plan="none")
    assert [h.path for h in at_zero] == [h.path for h in picture_only] and at_zero.plan == "image"
    assert [h.path for h in at_one] == [h.path for h in words_only]
    mixed = retrieve_by_image(path, tiny_index, tiny_embedder, k=3, text="green")
    assert mixed.plan == "image + words" and "words weight 0.70" in mixed.note and mixed.query == "green"


def test_words_that_only_set_rules_filter_instead_of_mixing(tiny_index, tiny_embedder):
    found = retrieve_by_image(tiny_index.paths[0], tiny_index, tiny_embedder, k=8, text="anything under $15?")
    assert found.plan.startswith("hybrid") and found.note == ""
    assert found.hits and all(h.product.price <= 15 for h in found)
    cheapest = retrieve_by_image(tiny_index.paths[0], tiny_index, tiny_embedder, k=8, text="the cheapest one")
    prices = [h.product.price for h in cheapest]
    assert cheapest.plan.startswith("hybrid") and prices == sorted(prices)


# --------------------------------------------------------------------------- refusal


def test_a_given_threshold_decides_weak_hits_and_the_match(tiny_index, tiny_embedder):
    picture = Image.new("RGB", (64, 64), (200, 40, 40))
    scores = view_similarities(embed_picture_views([picture], tiny_embedder)[0], tiny_index)
    middle = float(np.sort(scores)[-2])  # only the best hit reaches it
    found = retrieve_by_image(picture, tiny_index, tiny_embedder, k=3, calibration={"threshold": middle + 1e-6})
    assert found.match and not found[0].weak and found[1].weak and found[2].weak
    refused = retrieve_by_image(picture, tiny_index, tiny_embedder, k=3, calibration={"threshold": 2.0})
    assert not refused.match and all(h.weak for h in refused)


def test_the_exact_picture_is_a_match_whatever_the_threshold(tiny_index, tiny_embedder):
    found = retrieve_by_image(tiny_index.paths[1], tiny_index, tiny_embedder, k=2, calibration={"threshold": 2.0})
    assert found.match and found[0].exact and not found[0].weak and found[1].weak


def test_picture_and_words_are_judged_by_the_words_threshold(tiny_index, tiny_embedder):
    path = tiny_index.paths[0]
    words = tiny_index.similarities(tiny_embedder.embed_texts(["blue"])[0])
    kwargs = dict(k=len(tiny_index), text="blue", calibration={"threshold": 2.0})  # the picture's would refuse all
    found = retrieve_by_image(path, tiny_index, tiny_embedder, text_calibration={"threshold": -2.0}, **kwargs)
    assert found.match and not any(h.weak for h in found)
    best_word = float(words.max())
    found = retrieve_by_image(path, tiny_index, tiny_embedder, text_calibration={"threshold": best_word}, **kwargs)
    strong = [h.path for h in found if not h.weak]
    assert found.match and strong == [tiny_index.paths[int(words.argmax())]]


def test_a_photo_folder_judges_pictures_by_how_far_they_stand_out(tiny_embedder, tiny_index):
    photos = [Product.from_file_name(f"IMG_{i}") for i in range(len(tiny_index))]
    folder = ImageIndex(tiny_index.embeddings, photos, tiny_index.paths, tiny_index.model_id)
    assert calibrate_image_refusal(folder, tiny_embedder) is None
    found = retrieve_by_image(folder.paths[4], folder, tiny_embedder, k=3)
    assert found.match and found[0].exact  # the photo itself stands out


def test_image_calibration_uses_photo_like_copies_and_absent_looks(tiny_index, tiny_embedder):
    calibration = calibrate_image_refusal(tiny_index, tiny_embedder)
    pairs = {(p.color_name, p.shape) for p in tiny_index.products}
    assert calibration["n_present"] == len(tiny_index) * len(PERTURBATIONS)
    assert calibration["n_absent"] == len(COLOR_HEX) * len(SHAPES) - len(pairs)
    assert 0.0 <= calibration["false_accept"] <= 1.0 and -1.0 <= calibration["threshold"] <= 1.0
    assert image_refusal_calibration(tiny_index, tiny_embedder) is image_refusal_calibration(tiny_index, tiny_embedder)


def test_calibration_pictures_are_reproducible_and_differ_by_seed(tiny_index):
    first, again = present_pictures(tiny_index, seed=0)[:6], present_pictures(tiny_index, seed=0)[:6]
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again, strict=True))
    absent0, absent1 = absent_pictures(default_catalog(), 0), absent_pictures(default_catalog(), 1)
    assert len(absent0) == len(absent1) == len(COLOR_HEX) * len(SHAPES) - 8
    assert not np.array_equal(np.asarray(absent0[0]), np.asarray(absent1[0]))


def test_absent_pictures_leave_out_every_pair_the_catalog_has():
    full = [
        Product(f"Item {i}", shape, hexa, color, "solid", 1.0, "items")
        for i, (color, hexa, shape) in enumerate((c, h, s) for c, h in COLOR_HEX.items() for s in SHAPES)
    ]
    assert absent_pictures(full) == []
    assert len(absent_pictures(full[:-3])) == 3


# --------------------------------------------------------------------------- perturbations


@pytest.mark.parametrize("name", [*PERTURBATIONS, "all"])
def test_perturbations_are_seeded_rgb_pictures(name):
    picture = render_product(default_catalog()[1])
    a = perturb(picture, name, np.random.default_rng(3))
    b = perturb(picture, name, np.random.default_rng(3))
    assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(picture))
    assert min(a.size) >= 0.6 * min(picture.size)


def test_the_photo_background_replaces_only_the_white_around_the_product():
    picture = render_product(default_catalog()[1])  # Widget B: white stripes inside the square
    photo = np.asarray(perturb(picture, "photo_background", np.random.default_rng(0)), dtype=np.int16)
    plain = np.asarray(picture, dtype=np.int16)
    corner, centre = (slice(0, 20), slice(0, 20)), (slice(118, 158), slice(108, 148))
    assert np.abs(photo[corner] - 255).mean() > 30  # the room replaced the white
    assert np.abs(photo[centre] - plain[centre]).mean() < 20  # stripes and fill kept, up to noise and blur


def test_unknown_perturbation_is_refused():
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb(Image.new("RGB", (8, 8)), "fisheye", np.random.default_rng(0))


def test_an_uploaded_png_round_trips(tiny_index, tiny_embedder):
    data = _png(Image.open(tiny_index.paths[6]))
    found = retrieve_by_image(memoryview(data), tiny_index, tiny_embedder, k=1)
    assert found[0].exact and found[0].path == tiny_index.paths[6]


# --------------------------------------------------------------------------- the views of a query picture


def _drawn_box(image: Image.Image) -> tuple[int, int, int, int]:
    """Bounding box of the pixels that are not (near) white."""
    ys, xs = np.nonzero(np.asarray(image).min(axis=-1) < 200)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def _shrunk_in_a_corner(image: Image.Image, factor: float = 0.5) -> Image.Image:
    small = image.resize((round(image.width * factor), round(image.height * factor)))
    canvas = Image.new("RGB", image.size, (255, 255, 255))
    canvas.paste(small, (image.width - small.width - 3, 2))
    return canvas


def test_a_shrunk_off_centre_product_is_framed_like_the_catalog_image():
    catalog = render_product(default_catalog()[0])
    framed = frame_foreground(_shrunk_in_a_corner(catalog))
    assert framed.width == framed.height
    left, top, right, bottom = _drawn_box(framed)
    assert (bottom - top) / framed.height > 0.9  # the product fills the frame again...
    assert abs((left + right) / 2 - framed.width / 2) <= 2 and abs((top + bottom) / 2 - framed.height / 2) <= 2


def test_a_catalog_image_is_framed_as_it_already_is():
    catalog = render_product(default_catalog()[2])
    framed = frame_foreground(catalog)
    assert abs(framed.width - catalog.width) <= 6
    # the same drawing, give or take the margin: most pixels agree once resized to the catalog's size
    same = np.abs(np.asarray(framed.resize(catalog.size), dtype=int) - np.asarray(catalog, dtype=int)).max(-1) < 60
    assert same.mean() > 0.9


def test_a_room_behind_the_product_becomes_white_and_the_product_stays():
    catalog = render_product(default_catalog()[0])  # a solid red circle
    photo = perturb(catalog, "photo_background", np.random.default_rng(3))
    framed = np.asarray(frame_foreground(photo))
    corners = np.stack([framed[0, 0], framed[0, -1], framed[-1, 0], framed[-1, -1]])
    assert (corners == 255).all()
    # the room is gone: the framed photo is the catalog drawing again, pixel for pixel give or take
    drawing = np.asarray(frame_foreground(catalog).resize(framed.shape[1::-1]), dtype=int)
    assert (np.abs(framed.astype(int) - drawing).max(-1) < 60).mean() > 0.85
    centre = framed[framed.shape[0] // 2, framed.shape[1] // 2].astype(int)
    assert np.abs(centre - np.array([0xE7, 0x4C, 0x3C])).max() < 30  # still the red of the product


def test_a_crop_through_the_product_is_left_as_it_is():
    catalog = render_product(default_catalog()[0])
    tight = catalog.crop((70, 70, 190, 190))  # the border runs through the red circle
    assert np.array_equal(np.asarray(frame_foreground(tight)), np.asarray(tight))
    plain = Image.new("RGB", (40, 40), (90, 90, 90))  # nothing but background: nothing to frame
    assert np.array_equal(np.asarray(frame_foreground(plain)), np.asarray(plain))


def test_the_views_are_the_framed_picture_and_its_turns_or_the_picture_as_given():
    picture = _shrunk_in_a_corner(render_product(default_catalog()[1]))
    views = picture_views(picture)
    assert len(views) == 1 + len(VIEW_ROTATIONS)
    assert np.array_equal(np.asarray(views[0]), np.asarray(frame_foreground(picture)))
    turned = views[0].rotate(VIEW_ROTATIONS[0], resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))
    assert np.array_equal(np.asarray(views[1]), np.asarray(turned))
    (as_given,) = picture_views(picture, views=False)
    assert np.array_equal(np.asarray(as_given), np.asarray(picture))


def test_a_picture_scores_each_catalog_image_by_its_best_view(tiny_index, tiny_embedder):
    picture = perturb(Image.open(tiny_index.paths[2]), "rotation", np.random.default_rng(0))
    vectors = embed_picture_views([picture], tiny_embedder)[0]
    one_by_one = tiny_embedder.embed_images(picture_views(picture), progress=False)
    assert np.allclose(vectors, one_by_one, atol=1e-5)
    best = view_similarities(vectors, tiny_index)
    assert np.allclose(best, np.max(one_by_one @ tiny_index.embeddings.T, axis=0), atol=1e-5)
    found = retrieve_by_image(picture, tiny_index, tiny_embedder, k=len(tiny_index))
    for hit in found:
        assert hit.similarity == pytest.approx(best[tiny_index.paths.index(hit.path)], abs=1e-5)


def test_views_false_embeds_the_picture_as_given(tiny_index, tiny_embedder):
    picture = perturb(Image.open(tiny_index.paths[5]), "scale", np.random.default_rng(1))
    plain = tiny_index.similarities(tiny_embedder.embed_images([picture], progress=False)[0])
    found = retrieve_by_image(picture, tiny_index, tiny_embedder, k=len(tiny_index), views=False)
    for hit in found:
        assert hit.similarity == pytest.approx(plain[tiny_index.paths.index(hit.path)], abs=1e-5)
    with_views = retrieve_by_image(picture, tiny_index, tiny_embedder, k=len(tiny_index))
    assert [h.similarity for h in with_views] != pytest.approx([h.similarity for h in found], abs=1e-4)


def test_the_picture_threshold_is_calibrated_on_the_scores_a_search_uses(tiny_index, tiny_embedder):
    def best(pictures, views):
        return [
            float(view_similarities(v, tiny_index).max()) for v in embed_picture_views(pictures, tiny_embedder, views)
        ]

    absent = absent_pictures(tiny_index.products)
    for views in (True, False):
        calibration = calibrate_image_refusal(tiny_index, tiny_embedder, views=views)
        present = best(present_pictures(tiny_index), views)
        expected = choose_threshold(present, best(absent, views))
        assert calibration == pytest.approx(expected)
    remembered = image_refusal_calibration(tiny_index, tiny_embedder)
    assert remembered == calibrate_image_refusal(tiny_index, tiny_embedder)
    assert image_refusal_calibration(tiny_index, tiny_embedder, views=False) == pytest.approx(
        calibrate_image_refusal(tiny_index, tiny_embedder, views=False)
    )
