"""/ops/preferences/: a staff member's own settings, today the time zone dates show in."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from operations.forms import PreferencesForm
from operations.models import StaffPreferences
from operations.web import ops_render, staff_required


@staff_required
def preferences_view(request: HttpRequest) -> HttpResponse:
    """Show the member's time zone; a POST of a known zone (or the default) saves it."""
    saved = StaffPreferences.objects.filter(user=request.user).first()
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            chosen = form.cleaned_data["time_zone"]
            StaffPreferences.objects.update_or_create(
                user=request.user, defaults={"time_zone": chosen}
            )
            shown = chosen or f"the portal's default, {settings.TIME_ZONE}"
            messages.success(request, f"Dates and times now show in {shown}.")
            return HttpResponseRedirect(reverse("operations:preferences"))
    else:
        form = PreferencesForm(initial={"time_zone": saved.time_zone if saved else ""})
    # The zone this page is drawn in: the one the middleware activated for this member.
    now = timezone.localtime(timezone.now())
    return ops_render(
        request,
        "operations/preferences.html",
        {
            "form": form,
            "zone_name": timezone.get_current_timezone_name(),
            "now": now.strftime("%Y-%m-%d %H:%M ") + (now.tzname() or ""),
        },
        title="Your preferences",
        crumbs=[("Preferences", None)],
    )
