"""Property-based tests: whatever the input, these helpers fail cleanly or keep their promises."""

from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.catalog import PATTERNS, SHAPES, Product, product_from_dict
from course_utils.errors import CourseError
from course_utils.prompts import CONTEXT_CLOSE, CONTEXT_OPEN, build_context, context_entry, parse_context
from course_utils.query import parse_question

any_value = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.lists(st.integers()))
field_names = st.sampled_from(["name", "shape", "color", "color_name", "pattern", "price", "category", "description"])


@given(st.dictionaries(st.one_of(field_names, st.text(max_size=8)), any_value))
def test_product_validation_accepts_or_explains(data):
    try:
        product = product_from_dict(data)
    except CourseError as exc:
        assert str(exc)
    else:
        assert product.shape in SHAPES and product.pattern in PATTERNS and product.price >= 0


valid_products = st.builds(
    Product,
    name=st.text(min_size=1, max_size=60).filter(lambda s: s.strip() and s.isprintable()),
    shape=st.sampled_from(SHAPES),
    color=st.from_regex(r"#[0-9A-F]{6}", fullmatch=True),
    color_name=st.sampled_from(["red", "blue", "teal"]),
    pattern=st.sampled_from(PATTERNS),
    price=st.floats(min_value=0, max_value=10_000, allow_nan=False).map(lambda x: round(x, 2)),
    category=st.sampled_from(["widgets", "tools"]),
    description=st.text(max_size=80),
)


@given(valid_products)
def test_products_round_trip_through_json_dicts(product):
    again = product_from_dict(product.to_dict())
    assert product_from_dict(again.to_dict()) == again
    assert again.shape == product.shape and again.price == product.price


@given(st.lists(valid_products, min_size=1, max_size=5), st.text())
@settings(max_examples=50)
def test_context_is_fenced_one_line_per_product_and_parses_back(products, question):
    context = build_context(context_entry(i, p, 0.25) for i, p in enumerate(products, 1))
    lines = context.splitlines()
    assert lines[0] == CONTEXT_OPEN and lines[-1] == CONTEXT_CLOSE and len(lines) == len(products) + 2
    assert all("<" not in line and ">" not in line for line in lines[1:-1])  # no way out of the fence
    entries = parse_context(context + "\n\nQuestion: " + question)
    assert [e["rank"] for e in entries] == list(range(1, len(products) + 1))
    assert [e["price"] for e in entries] == [round(p.price, 2) for p in products]


@given(st.text())
def test_query_parsing_never_fails(text):
    intent = parse_question(text, ["widgets", "tools"])
    if intent.min_price is not None and intent.max_price is not None:
        assert intent.min_price <= intent.max_price
    assert isinstance(intent.describe(), str)


@given(
    st.floats(min_value=1, max_value=999).map(lambda x: round(x, 2)), st.sampled_from(["under", "below", "less than"])
)
def test_price_limits_are_read(price, word):
    assert parse_question(f"anything {word} ${price}").max_price == price


ranks = st.lists(st.integers(min_value=1, max_value=50), max_size=10, unique=True).map(sorted)


@given(ranks, st.integers(min_value=1, max_value=50))
def test_metrics_stay_between_zero_and_one(found, k):
    from course_utils.evaluation import hit_at_k, ndcg_at_k, r_precision, recall_at_k, reciprocal_rank

    for value in (
        hit_at_k(found, k),
        recall_at_k(found, k),
        ndcg_at_k(found, k),
        r_precision(found),
        reciprocal_rank(found),
    ):
        assert 0.0 <= value <= 1.0 + 1e-9
    if found and found == list(range(1, len(found) + 1)):  # relevant products fill the top places
        assert r_precision(found) == 1.0 and ndcg_at_k(found, k) == 1.0
