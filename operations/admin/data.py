"""DataAdmin: a ModelAdmin whose list and detail pages read a source (DynamoDB, SQS), not SQL.

An unmanaged model (operations/data_models.py) gives the admin its registry entry, content
type and permissions; a `Source` gives it rows. The changelist and change pages render with
templates that extend the admin's own change_list.html and change_form.html, so the index,
sidebar, breadcrumbs, search box, filter sidebar, actions (with a confirmation page, a CSRF
POST), pagination and the object's history (from the audit log) look and behave as for any
SQL model. What a QuerySet would give is asked of the source instead:

- `page(query)`: one page for the search, filters and sort asked, and an opaque cursor to the
  next one (DynamoDB's LastEvaluatedKey, signed so a URL cannot forge one);
- `get(pk)`: one object, or None;
- `count`: how many there are, when the source knows it cheaply (else None).

A source whose listing has a cost (an SQS receive) sets `list_on_get = False`: the page then
lists nothing until staff ask with a POST, and says what asking does (`listing_note`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_field, display_for_value, label_for_field
from django.core import signing
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst

from operations.models import AuditLogEntry

CURSOR_SALT = "operations.admin.data.cursor"
# Previous pages are reached through the cursors that led here; the trail keeps this many.
TRAIL_MAX = 20
SEARCH_VAR, CURSOR_VAR, TRAIL_VAR, ORDER_VAR, LIST_VAR = "q", "cursor", "trail", "o", "_list"
RESERVED = {SEARCH_VAR, CURSOR_VAR, TRAIL_VAR, ORDER_VAR, LIST_VAR}


class BadQuery(ValueError):
    """A search, filter or cursor the source cannot use; the message says why."""


@dataclass(frozen=True)
class SourceFilter:
    """One filter of the sidebar: a URL parameter and its choices ((value, label), ...)."""

    name: str
    title: str
    choices: Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Query:
    """What a changelist asks of its source."""

    search: str = ""
    filters: Mapping[str, str] = field(default_factory=dict)
    ordering: str = ""  # a field name, "-" in front for descending; "" for the source's own
    cursor: Any = None  # what the source returned as `next` for the page before
    per_page: int = 25


@dataclass
class SourcePage:
    """One page of rows (model instances, never saved) and where the next one starts."""

    rows: list[models.Model]
    next: Any = None
    count: int | None = None  # all rows matching, when known
    note: str = ""  # shown above the list (why a search was narrowed, what a look did...)


class Source:
    """Where a DataAdmin reads; subclasses implement `page` and `get`."""

    filters: Sequence[SourceFilter] = ()
    sortable: Sequence[str] = ()  # fields the source can sort by (DynamoDB: few or none)
    list_on_get = True
    listing_note = ""

    def page(self, query: Query) -> SourcePage:
        """One page for the query. BadQuery for a search or filter it cannot use."""
        raise NotImplementedError

    def get(self, pk: str) -> models.Model | None:
        """One object, or None."""
        raise NotImplementedError

    def count(self) -> int | None:
        """How many objects there are, if known cheaply."""
        return None


@dataclass(frozen=True)
class DataAction:
    """An action of the changelist's dropdown, run on the selected rows after confirmation.

    `run(request, pks)` changes things (through operations.audit.audited) and returns the
    message staff see, or a response (a redirect to what it started). `permission` is a
    codename of the model's app ("replay_deadletters"). `form` (optional): a Form class the
    confirmation page shows (a reason, a typed name); `run` then gets its cleaned data as a
    third argument.
    """

    name: str
    description: str
    permission: str
    run: Callable[..., str]
    form: type | None = None
    danger: bool = False
    # Exceptions that mean "the rules said no" (shown as a refusal, not a failure).
    refusals: tuple[type[Exception], ...] = ()


def encode_cursor(value: Any, *, scope: str) -> str:
    """An opaque cursor for a source's `next` value ('' for none), signed for one list
    (`scope`, the model's label) so no other list takes it."""
    if value is None:
        return ""
    return signing.dumps(value, salt=f"{CURSOR_SALT}:{scope}", compress=True)


def decode_cursor(token: str, *, scope: str) -> Any:
    """The value a cursor stands for; BadQuery when the portal did not make it for this list."""
    if not token:
        return None
    try:
        return signing.loads(token, salt=f"{CURSOR_SALT}:{scope}")
    except signing.BadSignature as exc:
        raise BadQuery(
            "This page link is not valid (edited or out of date); showing page 1."
        ) from exc


class DataAdmin(admin.ModelAdmin):
    """A ModelAdmin over a Source instead of a QuerySet; read-only unless a subclass says
    otherwise. Set `source`, `list_display`, `search_fields` (shown as the search box's help),
    `readonly_fields` for the detail page, and `data_actions`."""

    source: Source
    data_actions: Sequence[DataAction] = ()
    list_per_page = 25
    change_list_template = "admin/operations/data/change_list.html"
    change_form_template = "admin/operations/data/change_form.html"
    object_history_template = "admin/operations/data/object_history.html"
    actions = None  # Django's QuerySet actions: this admin has its own
    search_help_text = ""

    # -- permissions: nothing is added, changed or deleted through Django's forms ------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows are created by the pipeline (or a subclass's own view), not a model form."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Changes go through actions, each with its own permission."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """As for changes."""
        return False

    def has_perm(self, request: HttpRequest, codename: str) -> bool:
        """Whether the user holds one of this app's permissions."""
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def get_queryset(self, request: HttpRequest) -> Any:
        """There is no table: anything that asks for a QuerySet is a bug."""
        raise NotImplementedError(f"{self.model.__name__} is read through its source")

    def allowed_actions(self, request: HttpRequest) -> list[DataAction]:
        """The actions this user may run (the others are not offered, and refused)."""
        return [a for a in self.data_actions if self.has_perm(request, a.permission)]

    # -- the changelist ----------------------------------------------------------------------

    def query_of(self, request: HttpRequest) -> Query:
        """The Query a changelist request asks for."""
        params = request.GET
        names = {f.name for f in self.source.filters}
        filters = {k: v for k, v in params.items() if k in names and v}
        unknown = set(params) - RESERVED - names
        if unknown:
            raise BadQuery(f"Unknown filter: {', '.join(sorted(unknown))}.")
        ordering = params.get(ORDER_VAR, "")
        if ordering and ordering.lstrip("-") not in self.source.sortable:
            raise BadQuery(f"This list cannot be sorted by {ordering.lstrip('-')}.")
        return Query(
            search=params.get(SEARCH_VAR, "").strip(),
            filters=filters,
            ordering=ordering,
            cursor=decode_cursor(params.get(CURSOR_VAR, ""), scope=self.opts.label_lower),
            per_page=self.list_per_page,
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """List a page from the source (GET; POST for a source that lists only when asked),
        or confirm and run an action (POST with `action`)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if request.method == "POST" and LIST_VAR not in request.POST and "action" in request.POST:
            return self.action_view(request)
        if request.method not in ("GET", "HEAD", "POST"):
            return HttpResponse(status=405)
        listing = self.source.list_on_get or (request.method == "POST" and LIST_VAR in request.POST)
        try:
            query = self.query_of(request)
        except BadQuery as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(request.path)
        page, error = None, ""
        if listing:
            try:
                page = self.source.page(query)
            except BadQuery as exc:
                error = str(exc)
            except Exception as exc:  # the store or queue could not be read: say so
                error = f"Could not read: {type(exc).__name__}: {exc}"
        actions = self.allowed_actions(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "cl": self._changelist_context(request, query, page, actions),
            "title": capfirst(self.opts.verbose_name_plural),
            "subtitle": None,
            "error": error,
            "source": self.source,
            "listing": listing,
            "actions": actions,
            # Makes the admin's change_list.html load the JavaScript catalog actions.js uses.
            "action_form": bool(actions),
            "to_field": None,
            "has_add_permission": self.has_add_permission(request),
            "media": self.media,
            "preserved_filters": "",
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.change_list_template, context)

    def _changelist_context(
        self,
        request: HttpRequest,
        query: Query,
        page: SourcePage | None,
        actions: Sequence[DataAction],
    ) -> dict[str, Any]:
        params = {k: v for k, v in request.GET.items() if k not in (CURSOR_VAR, TRAIL_VAR)}
        trail = _trail(request.GET.get(TRAIL_VAR, ""))
        here = request.GET.get(CURSOR_VAR, "")
        next_url = prev_url = ""
        if page is not None and page.next is not None:
            next_trail = [*trail, here][-TRAIL_MAX:]
            next_url = "?" + urlencode(
                {
                    **params,
                    CURSOR_VAR: encode_cursor(page.next, scope=self.opts.label_lower),
                    TRAIL_VAR: _join(next_trail),
                }
            )
        if here:
            back = {**params}
            if trail and trail[-1]:
                back[CURSOR_VAR] = trail[-1]
                back[TRAIL_VAR] = _join(trail[:-1])
            prev_url = "?" + urlencode(back)
        return {
            "opts": self.opts,
            "query": query,
            "headers": self._headers(query, params),
            "has_filters": bool(self.source.filters),
            "rows": [self._row(obj) for obj in (page.rows if page else [])],
            "page": page,
            "count": page.count if page and page.count is not None else self._count(),
            "next_url": next_url,
            "prev_url": prev_url,
            "filters": self._filters(query, params),
            "has_active_filters": bool(query.filters),
            "clear_filters_url": "?"
            + urlencode({k: v for k, v in params.items() if k not in query.filters}),
            "search_fields": self.search_fields,
            "search_help_text": self.search_help_text,
            "show_actions": bool(actions) and page is not None and bool(page.rows),
        }

    def _count(self) -> int | None:
        try:
            return self.source.count()
        except Exception:  # a count is a nicety: the page says what it could not read elsewhere
            return None

    def _headers(self, query: Query, params: Mapping[str, str]) -> list[dict[str, Any]]:
        headers = []
        for name in self.list_display:
            label = label_for_field(name, self.model, self)
            sortable = name in self.source.sortable
            url, sorted_as = "", ""
            if sortable:
                current = query.ordering.lstrip("-") == name
                descending = query.ordering.startswith("-")
                sorted_as = ("descending" if descending else "ascending") if current else ""
                flip = f"-{name}" if current and not descending else name
                url = "?" + urlencode({**params, ORDER_VAR: flip})
            headers.append({"name": name, "label": label, "url": url, "sorted": sorted_as})
        return headers

    def _row(self, obj: models.Model) -> dict[str, Any]:
        cells = []
        for name in self.list_display:
            cells.append(self.display_value(obj, name))
        url = reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[str(obj.pk)],
        )
        return {"pk": str(obj.pk), "cells": cells, "url": url, "obj": obj}

    def display_value(self, obj: models.Model, name: str) -> str:
        """A field's or a display method's value, as the admin shows it."""
        empty = self.get_empty_value_display()
        try:
            model_field = self.opts.get_field(name)
        except FieldDoesNotExist:
            attr = getattr(self, name, None) or getattr(obj, name)
            value = attr(obj) if callable(attr) and hasattr(self, name) else attr
            value = value() if callable(value) else value
            return display_for_value(value, empty, boolean=getattr(attr, "boolean", False))
        return display_for_field(getattr(obj, model_field.attname), model_field, empty)

    def _filters(self, query: Query, params: Mapping[str, str]) -> list[dict[str, Any]]:
        specs = []
        for spec in self.source.filters:
            base = {k: v for k, v in params.items() if k != spec.name}
            choices = [
                {
                    "label": "All",
                    "url": "?" + urlencode(base),
                    "selected": spec.name not in query.filters,
                }
            ]
            for value, label in spec.choices:
                choices.append(
                    {
                        "label": label,
                        "url": "?" + urlencode({**base, spec.name: value}),
                        "selected": query.filters.get(spec.name) == value,
                    }
                )
            specs.append({"title": spec.title, "name": spec.name, "choices": choices})
        return specs

    # -- actions: choose -> confirm (a page, a form) -> run (a CSRF POST) -> back -------------

    def action_view(self, request: HttpRequest) -> HttpResponse:
        """Confirm the chosen action on the selected rows; run it once confirmed."""
        name = request.POST.get("action", "")
        action = next((a for a in self.data_actions if a.name == name), None)
        if action is None:
            messages.error(request, "No action was chosen, or it does not exist.")
            return HttpResponseRedirect(request.get_full_path())
        if not self.has_perm(request, action.permission):
            raise PermissionDenied(f"{action.description} needs {action.permission}.")
        pks = [pk for pk in request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME) if pk]
        if not pks:
            messages.warning(request, "Items must be selected in order to perform actions on them.")
            return HttpResponseRedirect(request.get_full_path())
        form = None
        if action.form is not None:
            form = action.form(request.POST if "post" in request.POST else None)
        if "post" in request.POST and (form is None or form.is_valid()):
            args = [request, pks] + ([form.cleaned_data] if form is not None else [])
            try:
                outcome = action.run(*args)
            except action.refusals as exc:  # the audit entry says REFUSED already
                messages.error(request, f"Refused: {exc}")
            except Exception as exc:  # the audit entry says FAILED already
                messages.error(request, f"Failed: {type(exc).__name__}: {exc}")
            else:
                if isinstance(outcome, HttpResponse):
                    return outcome
                messages.success(request, outcome)
            return HttpResponseRedirect(request.get_full_path())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Are you sure?",
            "subtitle": None,
            "action": action,
            "pks": pks,
            "form": form,
            "checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/operations/data/action_confirmation.html", context)

    # -- one object ---------------------------------------------------------------------------

    def get_object_or_404(self, object_id: str) -> models.Model:
        """The object from the source, or a 404."""
        obj = self.source.get(object_id)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} {object_id!r}.")
        return obj

    def detail_fields(self, obj: models.Model) -> list[tuple[str, str]]:
        """(label, shown value) of each field on the detail page."""
        names = self.readonly_fields or [f.name for f in self.opts.fields]
        return [
            (str(label_for_field(n, self.model, self)), self.display_value(obj, n)) for n in names
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The object's fields, read-only, with the buttons of what this user may do to it."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(status=405)
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = self.get_object_or_404(object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"View {self.opts.verbose_name}",
            "subtitle": str(obj),
            "original": obj,
            "object_id": object_id,
            "fields": self.detail_fields(obj),
            "add": False,
            "change": False,
            "has_view_permission": True,
            "has_change_permission": False,
            "has_add_permission": False,
            "has_delete_permission": False,
            "has_editable_inline_admin_formsets": False,
            "has_absolute_url": False,
            "is_popup": False,
            "save_as": False,
            "show_save": False,
            "to_field": None,
            "media": self.media,
            "app_label": self.opts.app_label,
            "preserved_filters": "",
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.change_form_template, context)

    def add_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """No model form adds rows here."""
        raise PermissionDenied

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Deleting goes through an action with its own permission."""
        raise PermissionDenied

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The audit log's entries about this object, newest first."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = self.get_object_or_404(object_id)
        entries = AuditLogEntry.objects.filter(self.history_filter(object_id))[:200]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Change history: {obj}",
            "subtitle": None,
            "object": obj,
            "module_name": capfirst(self.opts.verbose_name_plural),
            "entries": entries,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.object_history_template, context)

    def history_filter(self, object_id: str) -> Any:
        """Which audit entries are about this object (subclasses add older ways of naming it)."""
        from django.db.models import Q

        return Q(object_type=self.opts.label_lower, object_id=object_id)


def _trail(token: str) -> list[str]:
    # The cursors of the pages before this one, oldest first; page 1's (empty) is left out.
    return [part for part in token.split("~") if part] if token else []


def _join(trail: Sequence[str]) -> str:
    # "~" is in neither URL-safe base64 nor a signature, so it keeps the cursors apart.
    return "~".join(part for part in trail if part)
