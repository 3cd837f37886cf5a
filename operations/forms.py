"""The operations pages' forms: input checks a person can fix; the use cases check it again."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings

from pipeline.dlq import MAX_RATE
from pipeline.domain import MAX_CUSTOMER_NAME, MAX_DESCRIPTION, MAX_ITEM_NAME, validate_item_name
from pipeline.domain.orders import checked_text

REASON_HELP = "Why: kept in the audit log with your name."
MAX_REASON = 500


class CheckedTextField(forms.CharField):
    """A trimmed CharField with the order API's text rule (pipeline.domain.orders.checked_text):
    lone surrogates and control, format (bidi, zero-width, ...) and line-separator characters
    are refused with the form saying why, and what is kept is NFC-normalised. `line_breaks`
    lets newlines and tabs through, for multi-line text."""

    def __init__(self, *, line_breaks: bool = False, **kwargs: Any) -> None:
        super().__init__(strip=True, **kwargs)
        self.line_breaks = line_breaks

    def clean(self, value: Any) -> str:
        """The trimmed, checked, NFC-normalised text."""
        cleaned = super().clean(value)
        if not cleaned:
            return cleaned
        try:
            return checked_text(cleaned, line_breaks=self.line_breaks)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


def _reason(required: bool = True) -> forms.CharField:
    # Audit entries are read by other staff: nothing in them may hide or reorder what they say.
    return CheckedTextField(
        line_breaks=True,
        max_length=MAX_REASON,
        required=required,
        help_text=REASON_HELP,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )


class ReasonForm(forms.Form):
    """Confirm an action and say why."""

    reason = _reason()


class ResolveShippedForm(forms.Form):
    """Marking a MANUAL_INTERVENTION order shipped: how it was shipped goes on the order."""

    reason = CheckedTextField(
        line_breaks=True,
        label="Shipping note",
        max_length=MAX_REASON,
        help_text="How it was shipped (carrier, tracking number): written on the order.",
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )


class OrderSearchForm(forms.Form):
    """Find orders by id or by customer."""

    order_id = forms.CharField(label="Order id", max_length=100, required=False, strip=True)
    # Names are stored NFC-normalised (validate_customer_name), so the search is too: a name
    # typed with a combining accent finds the order.
    customer = CheckedTextField(label="Customer name", max_length=MAX_CUSTOMER_NAME, required=False)


def _price_field() -> forms.DecimalField:
    return forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0"),
        help_text="Decimal, at most 2 places.",
    )


def _description_field() -> forms.CharField:
    # checked_description's rule (the use cases check it again): multi-line text.
    return CheckedTextField(
        line_breaks=True,
        max_length=MAX_DESCRIPTION,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )


def _threshold_field() -> forms.IntegerField:
    return forms.IntegerField(
        label="Low-stock threshold",
        min_value=0,
        max_value=1_000_000_000,
        required=False,
        help_text="Flagged as low at or below this stock; empty: the default "
        f"({settings.INVENTORY_LOW_STOCK_DEFAULT}).",
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
    low_stock_threshold = _threshold_field()
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
    """Price, description and threshold, guarded by the values the editor saw (`seen`: a
    fingerprint of them; the save is refused if any changed meanwhile); stock has its own forms."""

    price = _price_field()
    description = _description_field()
    low_stock_threshold = _threshold_field()
    seen = forms.CharField(widget=forms.HiddenInput, max_length=64)
    reason = _reason(required=False)


class SetStockForm(forms.Form):
    """An absolute stock level, saved only if the stock is still what the editor saw."""

    stock = forms.IntegerField(label="New stock", min_value=0, max_value=1_000_000_000)
    seen_stock = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    reason = _reason()


class ThresholdForm(forms.Form):
    """The low-stock threshold of the selected items (empty: the default)."""

    low_stock_threshold = _threshold_field()
    reason = _reason(required=False)


class InventoryImportForm(forms.Form):
    """A CSV file of items (the export's columns) to create or set, as a background job."""

    file = forms.FileField(
        label="CSV file",
        help_text="Columns ItemName, Stock, Price, Description, LowStockThreshold (as the "
        "export writes them); UTF-8, with or without a BOM.",
    )
    reason = _reason(required=False)


class ReplayForm(forms.Form):
    """Replay a dead-letter queue: every message, the selected ones, or those the filters
    match; at most `limit` sent, at most `rate` a second."""

    message = forms.MultipleChoiceField(required=False, widget=forms.MultipleHiddenInput)
    order_id = forms.CharField(
        label="Order id",
        max_length=100,
        required=False,
        strip=True,
        help_text="Only the messages for this order (Orders DLQ only).",
    )
    min_age_minutes = forms.IntegerField(
        label="Older than (minutes)",
        min_value=0,
        required=False,
        help_text="Only messages first sent at least this long ago.",
    )
    max_age_minutes = forms.IntegerField(
        label="Newer than (minutes)",
        min_value=0,
        required=False,
        help_text="Only messages first sent at most this long ago.",
    )
    min_receives = forms.IntegerField(
        label="Received at least", min_value=1, required=False, help_text="times (SQS's count)."
    )
    max_receives = forms.IntegerField(
        label="Received at most", min_value=1, required=False, help_text="times (SQS's count)."
    )
    limit = forms.IntegerField(
        min_value=1,
        required=False,
        help_text="Stop after sending this many (empty: no limit).",
    )
    rate = forms.FloatField(
        label="Rate (messages/s)",
        min_value=0.1,
        max_value=MAX_RATE,
        required=False,
        help_text=f"At most this many sent a second (at most {MAX_RATE:g}, SQS's own redrive cap).",
    )
    reason = _reason()

    def __init__(
        self,
        *args: object,
        message_ids: list[str] | None = None,
        stream_failures: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stream_failures = stream_failures
        # Any id is acceptable: one that is gone by now is simply not found by the replay.
        ids = message_ids if message_ids is not None else self.data.getlist("message", [])
        self.fields["message"].choices = [(i, i) for i in ids]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, object]:
        """Filters that cannot both hold, or that the queue's messages cannot match."""
        data = super().clean() or {}
        low, high = data.get("min_age_minutes"), data.get("max_age_minutes")
        if low is not None and high is not None and low > high:
            self.add_error("max_age_minutes", "must not be less than 'Older than'")
        low, high = data.get("min_receives"), data.get("max_receives")
        if low is not None and high is not None and low > high:
            self.add_error("max_receives", "must not be less than 'Received at least'")
        if self.stream_failures and data.get("order_id"):
            # The page shows no order field for this queue: the error goes above the form.
            self.add_error(None, "stream-failure records name no order: filter by age instead")
        return data

    def filters(self) -> dict[str, object]:
        """The filters as a ReplayJob keeps them (ages in seconds); only those given."""
        data = self.cleaned_data
        minutes = {"min_age_seconds": "min_age_minutes", "max_age_seconds": "max_age_minutes"}
        found: dict[str, object] = {
            name: data[field] * 60 for name, field in minutes.items() if data.get(field) is not None
        }
        for name in ("order_id", "min_receives", "max_receives"):
            if data.get(name) not in (None, ""):
                found[name] = data[name]
        return found


class PurgeForm(forms.Form):
    """Purging a queue: its name typed in full, and why."""

    confirm_name = forms.CharField(
        label="Queue name",
        max_length=200,
        strip=True,
        help_text="Type the queue's name to confirm: every message in it is deleted for good.",
    )
    reason = _reason()

    def __init__(self, *args: object, queue_name: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.queue_name = queue_name

    def clean_confirm_name(self) -> str:
        """The exact name, or nothing is purged."""
        typed = self.cleaned_data["confirm_name"]
        if typed != self.queue_name:
            raise forms.ValidationError(
                "That is not this queue's name: nothing was purged. Type it exactly."
            )
        return typed


class PreferencesForm(forms.Form):
    """A staff member's time zone: any IANA name this machine knows, or the portal's default."""

    time_zone = forms.ChoiceField(
        label="Time zone",
        required=False,
        help_text="Dates and times everywhere in the portal are shown in it.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from operations.time_zones import known_zones

        super().__init__(*args, **kwargs)
        default = ("", f"The portal's default ({settings.TIME_ZONE})")
        self.fields["time_zone"].choices = [default, *((z, z) for z in known_zones())]
        self.fields["time_zone"].error_messages["invalid_choice"] = (
            "%(value)s is not a time zone this portal knows: choose one from the list "
            "(IANA names, such as Europe/Paris)."
        )
