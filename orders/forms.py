"""Forms of the review console."""

from __future__ import annotations

from typing import Any

from django import forms

from lifecycle.validation import ADDRESS_FIELD_MAX, address_problems


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
