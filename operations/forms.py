"""The operations pages' forms: input checks a person can fix; the use cases check it again."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from pipeline.domain import MAX_ITEM_NAME, validate_item_name

REASON_HELP = "Why: kept in the audit log with your name."


def _reason(required: bool = True) -> forms.CharField:
    return forms.CharField(
        max_length=500,
        required=required,
        strip=True,
        help_text=REASON_HELP,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )


class ReasonForm(forms.Form):
    """Confirm an action and say why."""

    reason = _reason()


class ResolveShippedForm(forms.Form):
    """Marking a MANUAL_INTERVENTION order shipped: how it was shipped goes on the order."""

    reason = forms.CharField(
        label="Shipping note",
        max_length=500,
        strip=True,
        help_text="How it was shipped (carrier, tracking number): written on the order.",
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )


class OrderSearchForm(forms.Form):
    """Find orders by id or by customer."""

    order_id = forms.CharField(label="Order id", max_length=100, required=False, strip=True)
    customer = forms.CharField(label="Customer name", max_length=200, required=False, strip=True)


def _price_field() -> forms.DecimalField:
    return forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0"),
        help_text="Decimal, at most 2 places.",
    )


def _description_field() -> forms.CharField:
    return forms.CharField(
        max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )


class InventoryCreateForm(forms.Form):
    """A new inventory item."""

    item_name = forms.CharField(
        label="Item name",
        max_length=MAX_ITEM_NAME,
        help_text="As orders name it: letters, digits, spaces, '.', '_' and '-'.",
    )
    stock = forms.IntegerField(min_value=0, max_value=1_000_000_000, initial=0)
    price = _price_field()
    description = _description_field()
    reason = _reason(required=False)

    def clean_item_name(self) -> str:
        """The same rule the order API applies to item names."""
        try:
            return validate_item_name(self.cleaned_data["item_name"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class StockAdjustForm(forms.Form):
    """Add (or, negative, remove) units."""

    delta = forms.IntegerField(
        label="Change in stock",
        min_value=-1_000_000_000,
        max_value=1_000_000_000,
        help_text="Units to add; negative to remove. Applied atomically to the current stock.",
    )
    reason = _reason()

    def clean_delta(self) -> int:
        """Zero would change nothing and still write an audit entry."""
        delta = self.cleaned_data["delta"]
        if delta == 0:
            raise forms.ValidationError("must not be 0")
        return delta


class InventoryEditForm(forms.Form):
    """Price and description; stock has its own form (an atomic adjustment)."""

    price = _price_field()
    description = _description_field()
    reason = _reason(required=False)


class ReplayForm(forms.Form):
    """Replay all DLQ messages (no ids) or the selected ones."""

    message = forms.MultipleChoiceField(required=False, widget=forms.MultipleHiddenInput)
    limit = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Stop after moving this many (empty: no limit).",
    )
    reason = _reason()

    def __init__(
        self, *args: object, message_ids: list[str] | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Any id is acceptable: one that is gone by now is simply not found by the replay.
        ids = message_ids if message_ids is not None else self.data.getlist("message", [])
        self.fields["message"].choices = [(i, i) for i in ids]  # type: ignore[attr-defined]
