import json
from pathlib import Path

import pytest

from course_utils.catalog import default_catalog
from course_utils.grounding import check_grounding

CATALOG = default_catalog()
BY_NAME = {p.name: p for p in CATALOG}
CASES = [json.loads(line) for line in (Path(__file__).parent / "data" / "grounding_answers.jsonl").open()]


@pytest.mark.parametrize("case", CASES, ids=[c["answer"][:40] for c in CASES])
def test_flags_every_invented_name_and_none_of_the_correct_ones(case):
    report = check_grounding(case["answer"], [BY_NAME[n] for n in case["retrieved"]], CATALOG)
    assert sorted(report.unknown_products) == sorted(case["invented"])
    assert sorted(report.not_retrieved) == sorted(case["not_retrieved"])
    assert list(report.wrong_prices) == case["wrong_prices"]
    assert report.ok == (not case["invented"] and not case["not_retrieved"] and not case["wrong_prices"])


def test_a_price_belongs_to_the_nearest_product_before_it():
    report = check_grounding("Widget A and then Widget B at $24.50", CATALOG[:2], CATALOG)
    assert report.ok and report.mentioned == ("Widget A", "Widget B")


def test_report_serialises_to_json():
    data = check_grounding("Widget Q for $1", CATALOG[:1], CATALOG).to_dict()
    assert json.loads(json.dumps(data))["unknown_products"] == ["Widget Q"]
