"""The dead-letter queues (Orders DLQ, stream-failure queue) as admin entries.

No GET changes a queue: the list page shows the depth (queue attributes) and the oldest
message's age (CloudWatch) and lists no message until staff press "Look at messages" (a POST),
which receives each listed message once and releases it at once. Replay (selected, filtered
or all) queues the existing replay job (operations/jobs.py); delete and purge go through
`operations.audit.audited`. Each needs its permission; purge also the queue's name typed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from botocore.exceptions import ClientError
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from operations import selectors
from operations.admin.data import BadQuery, DataAction, DataAdmin, Query, Source, SourcePage
from operations.admin.jobs import job_url
from operations.audit import Action, audited
from operations.forms import PurgeForm, ReasonForm, ReplayForm
from operations.jobs import JobRefused, create_replay_job, sent_label
from operations.models import OrdersDeadLetter, ReplayJob, StreamFailure
from operations.parts import attempt
from pipeline.dlq import MAX_RATE, dlq_discard, dlq_purge
from pipeline.errors import MessageNotFound
from pipeline.fulfilment import parse_fulfilment_message

Queue = ReplayJob.Queue


class DeadLetterSource(Source):
    """A dead-letter queue's messages, received only when staff ask (see `listing_note`)."""

    list_on_get = False

    def __init__(self, queue: str, model: type[Any]):
        self.queue = queue
        self.model = model

    @property
    def listing_note(self) -> str:  # type: ignore[override]
        """What a look does to the queue, said before staff ask for one."""
        return (
            f"Opening this page received nothing. “Look at messages” receives up to the first "
            f"{settings.OPS_DLQ_PEEK_MAX} messages to show them: each is hidden for at most "
            f"{settings.OPS_DLQ_PEEK_VISIBILITY} s while it is read and made visible again at "
            "once, and each look adds one to every listed message's receive count (these "
            "queues redrive nowhere, so nothing else changes)."
        )

    def page(self, query: Query) -> SourcePage:
        """One look: up to OPS_DLQ_PEEK_MAX messages, each received once and released."""
        try:
            letters = selectors.dead_letters(
                queue=self.queue,
                max_messages=settings.OPS_DLQ_PEEK_MAX,
                visibility=settings.OPS_DLQ_PEEK_VISIBILITY,
            )
        except selectors.ListingRefused as exc:
            raise BadQuery(str(exc)) from exc
        rows = [self.model.from_dead_letter(letter) for letter in letters]
        note = (
            f"Looked at {len(rows)} message{'s' if len(rows) != 1 else ''}: each was received "
            "once (its receive count went up by one) and released at once."
        )
        return SourcePage(rows, note=note)

    def get(self, pk: str) -> Any:
        """A message cannot be read without receiving it: there is no detail page."""
        return None

    def count(self) -> int | None:
        """Visible messages, from the queue's attributes (nothing received)."""
        return selectors.queue_depth(self.queue)["visible"]


def _order_of(body: str) -> str:
    try:
        return parse_fulfilment_message(body)[0]
    except ValueError:
        return ""


def _purge_refusal(exc: ClientError) -> str:
    code = exc.response.get("Error", {}).get("Code", "")
    if code.endswith("PurgeQueueInProgress"):
        return "SQS purges a queue at most once a minute, and this one was purged within it."
    return f"SQS refused: {exc}"


class ReplaySelectedForm(forms.Form):
    """A replay of the selected messages: why, and how fast."""

    rate = forms.FloatField(
        label="Rate (messages/s)", min_value=0.1, max_value=MAX_RATE, required=False
    )
    reason = ReasonForm.base_fields["reason"]


class DeadLetterAdmin(DataAdmin):
    """One dead-letter queue: its figures, a look (POST), replay, delete and purge."""

    queue: ClassVar[str]
    label: ClassVar[str]  # what messages call the queue
    change_list_template = "admin/operations/deadletter/change_list.html"
    list_per_page = 50

    def __init__(self, model: type[Any], admin_site: admin.AdminSite):
        self.source = DeadLetterSource(self.queue, model)
        self.data_actions = (
            DataAction(
                "replay_selected",
                "Replay selected messages",
                "replay_deadletters",
                self.replay_selected,
                form=ReplaySelectedForm,
                refusals=(JobRefused,),
            ),
            DataAction(
                "delete_selected",
                "Delete selected messages for good",
                "delete_deadletter",
                self.delete_selected,
                form=ReasonForm,
                danger=True,
                refusals=(JobRefused, MessageNotFound),
            ),
        )
        super().__init__(model, admin_site)

    def get_urls(self) -> list[URLPattern]:
        """Replay of all (or the filtered) messages, and purge, next to the list."""
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("replay/", wrap(self.replay_all_view), name=f"{info}_replay"),
            path("purge/", wrap(self.purge_view), name=f"{info}_purge"),
            *super().get_urls(),
        ]

    def _url(self, name: str) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}")

    def _row(self, obj: Any) -> dict[str, Any]:
        # A message has no detail page (reading one would receive it).
        return {**super()._row(obj), "url": ""}

    def change_view(
        self, request: HttpRequest, object_id: str, *args: Any, **kw: Any
    ) -> HttpResponse:
        """Messages have no page of their own: back to the queue, saying why."""
        messages.info(
            request, "A message is only seen in a look at the queue (reading it receives it)."
        )
        return HttpResponseRedirect(self._url("changelist"))

    def history_view(
        self, request: HttpRequest, object_id: str, *args: Any, **kw: Any
    ) -> HttpResponse:
        """As for the detail page."""
        return self.change_view(request, object_id)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The queue's figures (nothing received), its replays, and a look when asked."""
        unfinished = selectors.unfinished_replay_job(self.queue)
        extra = {
            "queue": self.queue,
            "queue_name": attempt(lambda: selectors.queue_for(self.queue).name),
            "depth": attempt(lambda: selectors.queue_depth(self.queue)),
            "oldest": attempt(lambda: selectors.queue_oldest_age(self.queue)),
            "unfinished": unfinished,
            "unfinished_url": job_url(unfinished) if unfinished else "",
            "jobs": selectors.recent_replay_jobs(limit=10, queue=self.queue),
            "sent_label": sent_label(self.queue),
            "stream_failures": self.queue == Queue.STREAM_FAILURES,
            "can_replay": self.has_perm(request, "replay_deadletters"),
            "can_purge": self.has_perm(request, "purge_deadletterqueue"),
            "replay_url": self._url("replay"),
            "purge_url": self._url("purge"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    # -- actions ------------------------------------------------------------------------------

    def _refuse_while_replaying(self, what: str) -> None:
        job = selectors.unfinished_replay_job(self.queue)
        if job is not None:
            raise JobRefused(
                f"a replay of this queue is {job.get_state_display()}; {what} waits until it is "
                "done (or cancelled). Nothing was changed."
            )

    def replay_selected(
        self, request: HttpRequest, pks: list[str], data: dict[str, Any]
    ) -> HttpResponse:
        """Queue a replay job of the selected messages and show its page."""
        job = create_replay_job(
            user=request.user,
            reason=data["reason"],
            queue=self.queue,
            message_ids=pks,
            rate=data.get("rate"),
        )
        return HttpResponseRedirect(job_url(job))

    def delete_selected(self, request: HttpRequest, pks: list[str], data: dict[str, Any]) -> str:
        """Delete each selected message for good, one audit entry each (written first)."""
        self._refuse_while_replaying("deleting messages")
        deleted = []
        for message_id in pks:
            with audited(
                request.user,
                Action.DLQ_DELETE,
                (self.opts.label_lower, message_id),
                before={"queue": self.queue, "message_id": message_id, "in_queue": True},
                after={"queue": self.queue, "message_id": message_id, "in_queue": False},
                reason=data["reason"],
                refusals=(MessageNotFound,),
            ) as entry:
                message = dlq_discard(
                    dlq=selectors.queue_for(self.queue),
                    message_id=message_id,
                    visibility=settings.OPS_DLQ_PEEK_VISIBILITY,
                )
                entry.detail = {
                    "queue": self.queue,
                    "message_id": message.message_id,
                    "body": message.body,
                    "order_id": _order_of(message.body),
                    "receive_count": message.receive_count,
                }
                entry.message = f"Deleted message {message_id} of the {self.label}."
            deleted.append(message_id)
        return f"Deleted {len(deleted)} message(s) for good."

    def replay_all_view(self, request: HttpRequest) -> HttpResponse:
        """Confirm a replay of every message (those the filters match, if given); a POST
        queues it as a job and shows its page."""
        if not self.has_perm(request, "replay_deadletters"):
            raise PermissionDenied("Replaying needs replay_deadletters.")
        stream_failures = self.queue == Queue.STREAM_FAILURES
        form = ReplayForm(
            request.POST or None,
            message_ids=[],
            stream_failures=stream_failures,
            initial={"rate": settings.OPS_REPLAY_RATE},
        )
        if request.method == "POST" and form.is_valid():
            try:
                job = create_replay_job(
                    user=request.user,
                    reason=form.cleaned_data["reason"],
                    queue=self.queue,
                    limit=form.cleaned_data["limit"],
                    rate=form.cleaned_data["rate"],
                    filters=form.filters(),
                )
            except JobRefused as exc:
                messages.error(request, f"Refused: {exc}")
            else:
                return HttpResponseRedirect(job_url(job))
        return self._form_page(
            request,
            form,
            title=f"Replay all of the {self.opts.verbose_name_plural}?",
            intro=(
                "Every message in the queue (or those the filters match) is looked at once: "
                "sent back if its order still waits for it, skipped (deleted) if its order has "
                "moved on, left in the queue otherwise."
            ),
            depth=attempt(lambda: selectors.queue_depth(self.queue)),
        )

    def purge_view(self, request: HttpRequest) -> HttpResponse:
        """Delete every message: the purge permission, the queue's name typed, a reason, POST."""
        if not self.has_perm(request, "purge_deadletterqueue"):
            raise PermissionDenied("Purging a dead-letter queue needs the admin role.")
        name = attempt(lambda: selectors.queue_for(self.queue).name)
        form = PurgeForm(request.POST or None, queue_name=name.value or "")
        if request.method == "POST" and name.value and form.is_valid():
            try:
                self._refuse_while_replaying("a purge")
                depth = attempt(lambda: selectors.queue_depth(self.queue)).value
                with audited(
                    request.user,
                    Action.DLQ_PURGE,
                    (self.opts.label_lower, name.value),
                    before={"queue": self.queue, "queue_name": name.value, "depth": depth},
                    after={"queue": self.queue, "queue_name": name.value, "visible": 0},
                    reason=form.cleaned_data["reason"],
                    refusals=(ClientError,),
                ) as entry:
                    count = dlq_purge(queue=selectors.queue_for(self.queue))
                    entry.detail = {"queue": self.queue, "queue_name": name.value, "about": count}
                    entry.message = (
                        f"Purged {name.value}: about {count} message(s) deleted (SQS takes up "
                        "to a minute to finish)."
                    )
            except JobRefused as exc:
                messages.error(request, f"Refused: {exc}")
            except ClientError as exc:
                messages.error(request, f"Refused: {_purge_refusal(exc)}")
            else:
                messages.success(request, entry.message)
            return HttpResponseRedirect(self._url("changelist"))
        return self._form_page(
            request,
            form,
            title=f"Purge the {self.opts.verbose_name_plural}?",
            intro=f"Every message in {name.value or 'the queue'} is deleted for good.",
            depth=attempt(lambda: selectors.queue_depth(self.queue)),
            danger=True,
        )

    def _form_page(self, request: HttpRequest, form: forms.Form, **context: Any) -> HttpResponse:
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            "admin/operations/deadletter/form.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "form": form,
                "subtitle": None,
                "stream_failures": self.queue == Queue.STREAM_FAILURES,
                **context,
            },
        )


@admin.register(OrdersDeadLetter)
class OrdersDeadLetterAdmin(DeadLetterAdmin):
    """Fulfilment requests the Orders queue gave up on."""

    queue = Queue.ORDERS_DLQ
    label = "Orders DLQ"
    list_display = (
        "message_id",
        "order",
        "order_status",
        "verdict",
        "receive_count",
        "sent_at",
        "short_body",
    )

    @admin.display(description="order")
    def order(self, obj: OrdersDeadLetter) -> str:
        """The order the request names (and its attempt)."""
        letter = obj.letter
        if not letter.order_id:
            return "none in body"
        return letter.order_id + (
            f" (attempt {letter.attempt})" if (letter.attempt or 0) > 1 else ""
        )

    @admin.display(description="order status now")
    def order_status(self, obj: OrdersDeadLetter) -> str:
        """The order's status as the Orders table has it now."""
        return obj.letter.order_status or obj.letter.lookup_error or ""

    @admin.display(description="a replay would")
    def verdict(self, obj: OrdersDeadLetter) -> str:
        """What a replay would do with the message now."""
        words = {"sent": "send it", "skipped": "skip it", "left": "leave it"}
        verdict = words.get(obj.letter.replay_verdict or "", "")
        return f"{verdict}: {obj.letter.replay_reason}" if obj.letter.replay_reason else verdict

    @admin.display(description="body")
    def short_body(self, obj: OrdersDeadLetter) -> str:
        """The body, cut short."""
        return obj.body[:300]


@admin.register(StreamFailure)
class StreamFailureAdmin(DeadLetterAdmin):
    """Stream batches the Orders stream mapping gave up on."""

    queue = Queue.STREAM_FAILURES
    label = "stream-failure queue"
    list_display = ("message_id", "batch", "receive_count", "sent_at", "short_body")

    @admin.display(description="failed batch")
    def batch(self, obj: StreamFailure) -> str:
        """The shard and sequence range the record describes."""
        batch = obj.letter.stream_batch
        if batch is None:
            return "not a failure record"
        records = "record" if batch.batch_size == 1 else "records"
        return f"{batch.batch_size} {records} of {batch.shard_id}, {batch.start} to {batch.end}"

    @admin.display(description="body")
    def short_body(self, obj: StreamFailure) -> str:
        """The body, cut short."""
        return obj.body[:300]
