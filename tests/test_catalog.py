import json

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
