from bgrobust.vocabulary import CLASSES, CLASS_COLORS, SORTED_CLASSES, check_classes, class_index

import pytest


def test_orders_match_the_original_code():
    assert len(CLASSES) == 15 and CLASSES[0] == "actin" and CLASSES[-1] == "vacuole"
    # LR-head order: pandas category (lexicographic, upper case first)
    assert SORTED_CLASSES[:4] == ("ER", "Golgi", "actin", "bud neck")
    assert set(CLASS_COLORS) == set(CLASSES)


def test_unknown_class_names_are_reported():
    with pytest.raises(ValueError, match="unknown localization class 'nucleous'"):
        class_index("nucleous")
    with pytest.raises(ValueError, match="labels.csv"):
        check_classes(["ER", "Er"], where="labels.csv")
