"""The operations pages' forms: what a person is asked to fix before any use case runs."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from operations.forms import InventoryCreateForm, ReplayForm, StockAdjustForm


@pytest.mark.parametrize(
    ("price", "ok"),
    [("0", True), ("0.00", True), ("19.99", True), ("19.999", False), ("-0.01", False)],
)
def test_prices_are_decimals_of_at_most_two_places_and_not_negative(price: str, ok: bool):
    form = InventoryCreateForm({"item_name": "lamp", "stock": "1", "price": price})
    assert form.is_valid() is ok, form.errors


def test_item_names_follow_the_order_apis_rule_and_are_trimmed():
    form = InventoryCreateForm({"item_name": "  desk lamp ", "stock": "0", "price": "1"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["item_name"] == "desk lamp"
    bad = InventoryCreateForm({"item_name": "lamp<script>", "stock": "0", "price": "1"})
    assert not bad.is_valid()
    assert "item name may hold letters" in bad.errors["item_name"][0]


def test_a_stock_adjustment_needs_a_non_zero_whole_number_and_a_reason():
    assert not StockAdjustForm({"delta": "0", "reason": "x"}).is_valid()
    assert not StockAdjustForm({"delta": "1.5", "reason": "x"}).is_valid()
    assert not StockAdjustForm({"delta": "5", "reason": " "}).is_valid()
    assert StockAdjustForm({"delta": "-5", "reason": "breakage"}).is_valid()


def test_a_replay_form_keeps_the_selected_message_ids():
    data = QueryDict(mutable=True)
    data.setlist("message", ["id-1", "id-2"])
    data["reason"] = "outage over"
    form = ReplayForm(data)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["message"] == ["id-1", "id-2"]
    assert form.cleaned_data["limit"] is None
