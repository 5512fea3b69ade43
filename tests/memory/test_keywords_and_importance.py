"""BM25 tokenisation and the importance heuristic."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory import (
    InvalidMemory,
    MemoryRecord,
    document_terms,
    heuristic_importance,
    query_terms,
    tokenize,
)
from memory.vector.keywords import term_index


def test_tokenize_keeps_names_and_numbers_and_drops_function_words() -> None:
    assert tokenize("What is Anna's PIN? It's 4471, I think.") == ["anna", "pin", "4471", "think"]
    assert tokenize("dogs, Dogs and DOG") == ["dog", "dog", "dog"]
    assert tokenize("the of and") == []


def test_term_index_is_stable_across_processes() -> None:
    assert term_index("zurich") == 1652909559
    assert query_terms("Zurich zurich").indices == (term_index("zurich"),)


def test_document_terms_weight_repeats_but_saturate() -> None:
    single = document_terms("violin concert")
    once = dict(zip(single.indices, single.values, strict=True))
    thrice = document_terms("violin violin violin concert")
    weights = dict(zip(thrice.indices, thrice.values, strict=True))
    violin = term_index("violin")
    assert weights[violin] > weights[term_index("concert")]
    assert weights[violin] < 3 * once[violin]
    assert not document_terms("and the of")


def test_importance_ranks_facts_above_chit_chat() -> None:
    chit_chat = heuristic_importance("ok thanks!")
    weather = heuristic_importance("it is a bit cloudy today")
    fact = heuristic_importance("My name is Anna Keller and I was born in Ulm in 1991.")
    preference = heuristic_importance("I love spicy food but I am allergic to peanuts")
    assert chit_chat < 0.1 < weather < preference
    assert weather < fact
    assert fact > 0.6


def test_importance_floor_by_kind() -> None:
    assert heuristic_importance("cloudy", kind="fact") >= 0.5
    assert heuristic_importance("cloudy", kind="turn") < 0.5


@given(st.text(max_size=400))
def test_importance_is_always_within_bounds(text: str) -> None:
    assert 0.0 <= heuristic_importance(text) <= 1.0
    assert heuristic_importance(text) == heuristic_importance(text)


def test_record_validates_its_fields() -> None:
    base = {
        "persona_id": "p",
        "user_id": "u",
        "text": "t",
        "speaker_name": "A",
        "speaker_role": "user",
    }
    with pytest.raises(InvalidMemory, match="importance"):
        MemoryRecord.new(**base, importance=1.2)  # type: ignore[arg-type]
    with pytest.raises(InvalidMemory, match="kind"):
        MemoryRecord.new(**base, kind="gossip")  # type: ignore[arg-type]
    with pytest.raises(InvalidMemory, match="timezone"):
        MemoryRecord.new(**base, created_at=datetime(2025, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidMemory, match="user_id"):
        MemoryRecord.new(**{**base, "user_id": ""})  # type: ignore[arg-type]
