"""The staff forms' text fields: the order API's text rule, bounded sizes, errors on the form."""

from __future__ import annotations

import pytest

from operations.forms import (
    InventoryCreateForm,
    InventoryEditForm,
    OrderSearchForm,
    ReasonForm,
    ResolveShippedForm,
)

ITEM = {"item_name": "lamp", "stock": "1", "price": "9.99"}
BAD_TEXT = {
    "lone surrogate": ("Desk\ud800lamp", "must be valid Unicode text"),
    "bidi override": ("Desk\u202elamp", "U+202E"),
    "bidi isolate": ("Desk\u2066lamp", "U+2066"),
    "zero-width space": ("Desk\u200blamp", "U+200B"),
    "zero-width joiner": ("Desk\u200dlamp", "U+200D"),
    "byte order mark": ("Desk\ufefflamp", "U+FEFF"),
    "escape": ("Desk\x1b[31mlamp", "must not contain control characters"),
    "bell": ("Desk\x07lamp", "must not contain control characters"),
    "line separator": ("Desk\u2028lamp", "U+2028"),
}


@pytest.mark.parametrize("name", BAD_TEXT.values(), ids=BAD_TEXT.keys())
def test_item_names_refuse_what_the_api_refuses(name: tuple[str, str]):
    # Given a new item whose name hides a character the order API refuses
    form = InventoryCreateForm({**ITEM, "item_name": name[0]})

    # Then the form is invalid and says so on the name (the API's item-name rule)
    assert not form.is_valid()
    assert "item name may hold letters" in form.errors["item_name"][0]


@pytest.mark.parametrize("text", BAD_TEXT.values(), ids=BAD_TEXT.keys())
@pytest.mark.parametrize("form_class", [InventoryCreateForm, InventoryEditForm])
def test_descriptions_refuse_hidden_characters_and_say_which(
    form_class: type, text: tuple[str, str]
):
    # Given an item description holding a refused character
    form = form_class({**ITEM, "description": text[0]})

    # Then the form is invalid with the reason on the description
    assert not form.is_valid()
    assert text[1] in form.errors["description"][0]


@pytest.mark.parametrize("text", BAD_TEXT.values(), ids=BAD_TEXT.keys())
@pytest.mark.parametrize(
    ("form_class", "data"),
    [(ReasonForm, {}), (ResolveShippedForm, {}), (OrderSearchForm, {})],
    ids=["reason", "shipping note", "customer search"],
)
def test_reasons_notes_and_searches_refuse_hidden_characters(
    form_class: type, data: dict[str, str], text: tuple[str, str]
):
    # Given an audit reason, a shipping note or a customer search with a refused character
    field = "customer" if form_class is OrderSearchForm else "reason"
    form = form_class({**data, field: text[0]})

    # Then the form says what is wrong with that field
    assert not form.is_valid()
    assert text[1] in form.errors[field][0]


def test_multi_line_text_keeps_its_line_breaks_and_is_nfc_normalised():
    # Given a description over two lines with a decomposed accent, and a reason likewise
    description = "  Cafe\u0301 lamp\r\n\twarm light  "
    create = InventoryCreateForm({**ITEM, "description": description})
    reason = ReasonForm({"reason": "Customer called\r\nasked to cancel"})
    search = OrderSearchForm({"customer": " Jose\u0301 "})

    # Then they are kept, trimmed, with line breaks and the accent precomposed
    assert create.is_valid() and reason.is_valid() and search.is_valid()
    assert create.cleaned_data["description"] == "Café lamp\r\n\twarm light"
    assert reason.cleaned_data["reason"] == "Customer called\r\nasked to cancel"
    assert search.cleaned_data["customer"] == "José"  # as stored, so the search finds it


@pytest.mark.parametrize(
    ("form_class", "field", "limit"),
    [
        (InventoryCreateForm, "item_name", 100),
        (InventoryCreateForm, "description", 500),
        (InventoryEditForm, "description", 500),
        (ReasonForm, "reason", 500),
        (ResolveShippedForm, "reason", 500),
        (OrderSearchForm, "customer", 200),
    ],
)
def test_text_fields_are_bounded(form_class: type, field: str, limit: int):
    # Given a field one character over its limit, and one at it
    over = form_class({**ITEM, field: "a" * (limit + 1)})
    at = form_class({**ITEM, field: "a" * limit, "reason": "ok"})

    # Then only the one over it is refused, on that field
    assert not over.is_valid() and field in over.errors
    assert field not in at.errors, at.errors


def test_empty_optional_text_stays_empty():
    # Given an item without a description and without a reason, Then both are empty strings
    form = InventoryCreateForm({**ITEM, "description": "   "})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["description"] == "" and form.cleaned_data["reason"] == ""
