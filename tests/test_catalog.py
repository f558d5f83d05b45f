import json

import numpy as np
import pytest

from course_utils.catalog import (
    PATTERNS,
    SHAPES,
    Product,
    default_catalog,
    draw_item,
    load_catalog,
    render_catalog,
    render_product,
    save_catalog,
    validate_catalog,
)
from course_utils.errors import CourseError


def test_default_catalog_matches_the_course():
    products = {p.name: p for p in default_catalog()}
    assert len(products) == 8
    assert products["Widget A"] == Product("Widget A", "circle", "#E74C3C", "red", "solid", 12.99, "widgets")
    assert products["Tool N"].pattern == "striped" and products["Tool N"].shape == "diamond"
    assert max(products.values(), key=lambda p: p.price).name == "Tool M"
    assert [p.color for p in default_catalog()] == [
        "#E74C3C",
        "#3498DB",
        "#2ECC71",
        "#F1C40F",
        "#9B59B6",
        "#E67E22",
        "#1ABC9C",
        "#E91E63",
    ]


def test_save_and_load_round_trip(tmp_path):
    path = save_catalog(default_catalog(), tmp_path / "catalog.json")
    assert load_catalog(path) == default_catalog()
    assert isinstance(json.loads(path.read_text()), list)


def good(**changes):
    data = default_catalog()[0].to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "item, words",
    [
        (good(shape="cube"), ["Widget A", "shape", "cube"]),
        (good(pattern="plaid"), ["Widget A", "pattern"]),
        (good(price=-1), ["Widget A", "price"]),
        (good(price="cheap"), ["Widget A", "price"]),
        (good(price=float("nan")), ["price"]),
        (good(price=float("inf")), ["price"]),
        (good(price=10**400), ["Widget A", "price", "..."]),  # overflowed float()
        (good(price=10**5000), ["Widget A", "price", "too long to show"]),  # too long even for repr()
        (good(color="red"), ["Widget A", "color"]),
        ({k: v for k, v in good().items() if k != "category"}, ["Widget A", "category"]),
        (good(size=3), ["Widget A", "size"]),
        ("Widget A", ["product #1"]),
    ],
)
def test_validation_names_product_and_field(item, words):
    with pytest.raises(CourseError) as err:
        validate_catalog([item])
    for word in words:
        assert word in str(err.value)


def test_duplicate_names_are_refused():
    with pytest.raises(CourseError, match="duplicate name"):
        validate_catalog([good(), good(name="widget a")])


def test_empty_catalog_and_bad_json(tmp_path):
    with pytest.raises(CourseError, match="empty"):
        validate_catalog([])
    bad = tmp_path / "catalog.json"
    bad.write_text('[{"name": ')
    with pytest.raises(CourseError, match="not valid JSON"):
        load_catalog(bad)
    with pytest.raises(CourseError, match="not found"):
        load_catalog(tmp_path / "nope.json")


def test_text_fields_are_cleaned():
    product = validate_catalog([good(name="Widget\x00 A\n\t2", description="x" * 500)])[0]
    assert product.name == "Widget A 2"
    assert len(product.description) == 200


def test_rendering_is_deterministic(tmp_path):
    first = render_catalog(default_catalog(), tmp_path / "a")
    second = render_catalog(default_catalog(), tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert len({p.read_bytes() for p in first}) == 8
    assert (tmp_path / "a" / "catalog.json").is_file()


def test_render_product_draws_colour_outline_and_white_background():
    image = render_product(default_catalog()[0])
    assert image.size == (256, 256) and image.mode == "RGB"
    assert image.getpixel((128, 135)) == (0xE7, 0x4C, 0x3C)  # the red circle's centre
    assert image.getpixel((5, 128)) == (255, 255, 255)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_shape_and_pattern_renders(shape, pattern):
    image = draw_item(shape, "#3498DB", pattern, "Test", "$1.00", size=128)
    colours = image.getcolors(maxcolors=128 * 128)
    has_white_in_shape = pattern != "solid"
    assert any(c == (0x34, 0x98, 0xDB) for _, c in colours)
    if has_white_in_shape:
        # the pattern paints white over part of the shape: fewer blue pixels than solid
        solid = draw_item(shape, "#3498DB", "solid", "Test", "$1.00", size=128)
        blue = sum(n for n, c in colours if c == (0x34, 0x98, 0xDB))
        assert blue < sum(n for n, c in solid.getcolors(128 * 128) if c == (0x34, 0x98, 0xDB))


# -------------------------------------------------------------- image file names


def product(name):
    return Product(name, "circle", "#E74C3C", "red", "solid", 1.0, "things")


def test_the_default_catalog_keeps_its_file_names(tmp_path):
    paths = render_catalog(default_catalog(), tmp_path)
    assert [p.name for p in paths] == [
        "widget_a.png",
        "widget_b.png",
        "gadget_x.png",
        "gadget_y.png",
        "tool_m.png",
        "tool_n.png",
        "widget_c.png",
        "gadget_z.png",
    ]


# names whose old slugs collided: each pair must render to two files, each with its own picture
COLLIDING_NAMES = [
    ("Widget A", "widget-a"),
    ("Widget A", "Widget_A"),
    ("Café", "Cafe"),
    ("赤い丸", "青い四角"),  # all-CJK: both slugged to 'product'
    ("Ω", "Ж"),
    ("Tool 1", "Tool #1"),
]


@pytest.mark.parametrize("names", COLLIDING_NAMES, ids=lambda n: " vs ".join(n))
def test_names_that_slug_alike_get_their_own_image(tmp_path, names):
    products = [product(name) for name in names]
    paths = render_catalog(products, tmp_path)
    assert len(set(paths)) == 2 and all(path.is_file() for path in paths)
    assert paths[0].read_bytes() != paths[1].read_bytes()  # each picture shows its own name
    assert len(list(tmp_path.glob("*.png"))) == 2
    assert [p.slug for p in products] == [path.stem for path in paths]


def test_the_same_name_in_nfc_and_nfd_is_one_product():
    nfc, nfd = "Caf\u00e9", "Cafe\u0301"
    with pytest.raises(CourseError, match="duplicate name"):
        validate_catalog([good(name=nfc), good(name=nfd)])
    assert validate_catalog([good(name=nfd)])[0].name == nfc


def test_a_file_name_never_depends_on_the_rest_of_the_catalog():
    alone = product("widget-a").slug
    assert alone == validate_catalog([product("Widget A"), product("widget-a")])[1].slug
    assert product("Cafe\u0301").slug == product("Caf\u00e9").slug  # NFC and NFD: one file


@pytest.mark.parametrize("name", ["\ufb03" * 150, "x" * 200, "日本" * 100, "a b " * 50])
def test_long_names_get_short_file_names(tmp_path, name):
    [path] = render_catalog([product(name)], tmp_path)
    assert path.is_file() and len(path.name.encode()) <= 110


def test_a_two_product_cjk_catalog_indexes_each_picture(tmp_path, tiny_embedder):
    from course_utils.indexing import index_folder

    products = [product("赤い丸"), Product("青い四角", "square", "#3498DB", "blue", "striped", 2.0, "things")]
    render_catalog(products, tmp_path)
    index = index_folder(tmp_path, tiny_embedder, cache=False)
    assert [p.name for p in index.products] == ["赤い丸", "青い四角"]
    assert len(set(index.paths)) == 2
    assert not np.allclose(index.embeddings[0], index.embeddings[1])
