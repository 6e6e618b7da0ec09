"""Forms of the review console."""

from __future__ import annotations

from typing import Any

from django import forms

from lifecycle.validation import ADDRESS_FIELD_MAX, REASON_MAX, address_problems, reason_problem


class AddressForm(forms.Form):
    street = forms.CharField(max_length=ADDRESS_FIELD_MAX, strip=True)
    city = forms.CharField(max_length=ADDRESS_FIELD_MAX, strip=True)
    zip = forms.CharField(label="ZIP", max_length=ADDRESS_FIELD_MAX, strip=True)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors:
            for name, problem in address_problems(self.address(cleaned)).items():
                field = name.removeprefix("address.")
                self.add_error(field if field in self.fields else None, problem)
        return cleaned

    @staticmethod
    def address(cleaned: dict[str, Any]) -> dict[str, str]:
        return {"street": cleaned.get("street", ""), "city": cleaned.get("city", ""), "zip": cleaned.get("zip", "")}


CANCEL_REASONS = [
    ("customer_request", "Customer request"),
    ("suspected_fraud", "Suspected fraud"),
    ("out_of_stock", "Out of stock"),
    ("address_problem", "Address problem"),
    ("other", "Other"),
]
CANCEL_REASON_MAX = REASON_MAX  # what the API and admin accept too (the contract's "Reviewer teams")


class CancelForm(forms.Form):
    """Why an order is cancelled: a choice from a short list, and words of the reviewer's own."""

    code = forms.ChoiceField(label="Reason", choices=CANCEL_REASONS)
    text = forms.CharField(label="Details", required=False, strip=True, max_length=CANCEL_REASON_MAX)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("code") == "other" and not cleaned.get("text"):
            self.add_error("text", "Say why, when the reason is “Other”.")
        if cleaned.get("code") and not self.errors:
            problem = reason_problem(self.reason(cleaned))
            if problem:
                self.add_error("text", f"The reason with its label {problem}.")
        return cleaned

    @staticmethod
    def reason(cleaned: dict[str, Any]) -> str:
        """The reason as recorded in ORDER_CANCELLED: the label, then the details if any."""
        label = dict(CANCEL_REASONS)[cleaned["code"]]
        text = cleaned.get("text", "")
        if cleaned["code"] == "other":
            return text
        return f"{label}: {text}" if text else label


class NoteForm(forms.Form):
    text = forms.CharField(label="Note", strip=True, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))


QUEUE_SORTS = [
    ("deadline", "Deadline (soonest first)"),
    ("age", "Age (oldest first)"),
    ("total", "Total (largest first)"),
]


QUEUE_VIEWS = [
    ("", "Everyone's"),
    ("mine", "Claimed by me"),
    ("unclaimed", "Unclaimed"),
    ("escalated", "Escalated"),
    ("second", "Waiting for a second approval"),
]


class QueueFilterForm(forms.Form):
    """The queue's filters, from the query string; bad values are form errors, never a 500."""

    state = forms.CharField(required=False, max_length=40)
    view = forms.ChoiceField(required=False, choices=QUEUE_VIEWS, label="Show")
    q = forms.CharField(required=False, max_length=100, strip=True)
    min_total = forms.DecimalField(required=False, min_value=0, max_digits=10, decimal_places=2, label="Total from")
    max_total = forms.DecimalField(required=False, min_value=0, max_digits=10, decimal_places=2, label="to")
    sort = forms.ChoiceField(required=False, choices=QUEUE_SORTS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        low, high = cleaned.get("min_total"), cleaned.get("max_total")
        if low is not None and high is not None and low > high:
            self.add_error("max_total", "The upper bound is below the lower one.")
        return cleaned
