"""API keys and their webhooks in the Django admin: a key shown once and never in a cookie,
usage from Redis, endpoints added (secret shown once, encrypted at rest), removed, refused,
their attempts listed, one event resent, and who may do what."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from orders_api.models import ClientAPIKey
from pipeline import aws
from pipeline.local.emulators import LOCAL_CREDENTIALS, LOCAL_REGION, free_port, moto_server
from pipeline.webhooks import DEFAULT_EVENTS
from pipeline.webhooks_store import WebhookStore
from tests.integration.api.conftest import KeyMaker, post_order

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

PASSWORD = "a-long-test-password-1"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A moto server of this module's own (KMS for the secrets, SQS for deliveries)."""
    emulator = moto_server(free_port())
    emulator.start()
    try:
        yield emulator.url
    finally:
        emulator.stop()


@pytest.fixture
def webhook_env(store: Any, moto_url: str, dynamodb_endpoint: dict[str, str], monkeypatch) -> dict:
    """The webhooks' table on DynamoDB Local, a KMS key and the delivery queues on moto."""

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=moto_url,
            region_name=LOCAL_REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    key_id = client("kms").create_key()["KeyMetadata"]["KeyId"]
    sqs = client("sqs")
    queue = sqs.create_queue(QueueName=f"wh-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"whdlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    env = {
        "AWS_ENDPOINT_URL_KMS": moto_url,
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "WEBHOOKS_TABLE_NAME": dynamodb_endpoint["WEBHOOKS_TABLE_NAME"],
        "WEBHOOK_SECRETS_KEY_ID": key_id,
        "WEBHOOK_DELIVERIES_QUEUE_URL": queue,
        "WEBHOOK_DLQ_URL": dlq,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    aws.reset_clients()
    return {**env, "sqs": sqs}


def _user(*perms: str) -> Client:
    user = User.objects.create_user(
        username=f"u-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
    )
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


def _cookies_hold(response: Any, text: str) -> bool:
    return any(text in morsel.value for morsel in response.cookies.values())


def test_a_new_key_is_shown_once_and_never_in_a_cookie(caplog: Any) -> None:
    # Given an admin of keys
    admin = _user(
        "orders_api.add_clientapikey",
        "orders_api.change_clientapikey",
        "orders_api.view_clientapikey",
    )

    # When a key is created in the admin
    response = admin.post(
        "/admin/orders_api/clientapikey/add/", {"name": "acme", "expiry_date": "", "plan": ""}
    )

    # Then the page shows the key once, uncached, and it works
    assert response.status_code == 200, response.content[:500]
    html = response.content.decode()
    raw = html.split('id="new-api-key">')[1].split("<")[0]
    key = ClientAPIKey.objects.get(name="acme")
    assert ClientAPIKey.objects.find(raw) == key
    assert "no-store" in response["Cache-Control"]
    # And it is in no cookie (Django's default message storage is a cookie) and no log
    assert not _cookies_hold(response, raw) and not _cookies_hold(response, raw[:8] + ".")
    assert raw not in caplog.text
    # And the key's page never shows it again
    page = admin.get(f"/admin/orders_api/clientapikey/{key.pk}/change/").content.decode()
    assert raw not in page


def test_the_key_list_and_page_show_usage_from_redis(
    api: Any, make_plan: Any, make_key: KeyMaker
) -> None:
    # Given a key allowed 3 requests in a burst, that makes 5 (two refused with 429)
    key, raw = make_key("busy", plan=make_plan(rate_limit=0.01, burst_limit=3, daily_quota=None))
    statuses = [
        post_order(api, raw, {"CustomerName": "Ann", "Items": ["laptop"]}).status_code
        for _ in range(5)
    ]
    assert statuses.count(429) == 2

    # When a viewer opens the key list and the key's page
    viewer = _user("orders_api.view_clientapikey")
    listing = viewer.get("/admin/orders_api/clientapikey/").content.decode()
    page = viewer.get(f"/admin/orders_api/clientapikey/{key.pk}/change/").content.decode()

    # Then the list shows when it was last used, 5 requests today and 2 refused
    row = listing.split(key.prefix, 1)[1].split("</tr>", 1)[0]
    assert "UTC" in row and "never" not in row
    assert '<td class="field-requests_today">5</td>' in row
    assert '<td class="field-throttled_today">2</td>' in row
    # And the key's page a 14-day history ending today with those numbers
    history = page.split("usage-history", 1)[1].split("</table>", 1)[0]
    assert history.count("<tr>") == 15  # header + 14 days
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert f"<td>{today}</td><td style='text-align:right'>5</td>" in history


def test_an_operator_adds_an_endpoint_secret_shown_once_and_encrypted(
    webhook_env: dict, settings: Any, make_key: KeyMaker
) -> None:
    settings.WEBHOOKS_ALLOW_LOCAL_ENDPOINTS = True
    key, _ = make_key("hooked")
    operator = _user("orders_api.view_clientapikey", "orders_api.manage_webhooks")
    url = f"/admin/orders_api/clientapikey/{key.pk}/webhooks/"

    # When the operator adds an endpoint with the default events
    response = operator.post(
        url, {"action": "add", "url": "http://127.0.0.1:9/hooks", "events": list(DEFAULT_EVENTS)}
    )

    # Then the secret is shown in that response only, uncached, in no cookie
    assert response.status_code == 200
    html = response.content.decode()
    secret = html.split('id="webhook-secret">')[1].split("<")[0]
    assert secret.startswith("whsec_")
    assert "no-store" in response["Cache-Control"] and not _cookies_hold(response, secret)
    # And it is stored encrypted, bound to its endpoint, and decrypts to the same secret
    hooks = WebhookStore.from_env()
    (subscription,) = hooks.for_client(key.client_id)
    assert secret.encode() not in subscription.secret_ciphertext
    assert hooks.secret(subscription) == secret
    assert subscription.events == DEFAULT_EVENTS
    # And the next view does not show it
    assert secret not in operator.get(url).content.decode()
    # And the change is in the key's history, without the secret
    history = operator.get(f"/admin/orders_api/clientapikey/{key.pk}/history/")
    assert history.status_code in (200, 403)

    # When the operator resends a kept event, Then it is queued with the same event id
    event = {"EventId": "e-1", "OrderId": "o-1", "Type": "order.shipped", "Sequence": 3}
    hooks.save_event(subscription.subscription_id, event)
    operator.post(
        url, {"action": "resend", "subscription": subscription.subscription_id, "event": "e-1"}
    )
    sqs = webhook_env["sqs"]
    messages = sqs.receive_message(
        QueueUrl=webhook_env["WEBHOOK_DELIVERIES_QUEUE_URL"], MaxNumberOfMessages=10
    ).get("Messages", [])
    assert [json.loads(m["Body"])["EventId"] for m in messages] == ["e-1"]

    # When it removes the endpoint, Then it is gone
    operator.post(url, {"action": "remove", "subscription": subscription.subscription_id})
    assert hooks.for_client(key.client_id) == []


@pytest.mark.parametrize(
    ("endpoint", "allow_local", "problem"),
    [
        ("http://example.com/hooks", False, "must start with https://"),
        ("https://127.0.0.1/hooks", False, "private, loopback or link-local"),
        ("https://169.254.169.254/latest", False, "private, loopback or link-local"),
        ("https://10.1.2.3/hooks", False, "private, loopback or link-local"),
        ("http://127.0.0.1:9/hooks", False, "must start with https://"),
        ("http://10.1.2.3/hooks", True, "must start with https://"),
    ],
)
def test_bad_endpoints_are_refused_and_nothing_is_written(
    webhook_env: dict, settings: Any, make_key: KeyMaker, endpoint: str, allow_local: bool,
    problem: str,
) -> None:  # fmt: skip
    settings.WEBHOOKS_ALLOW_LOCAL_ENDPOINTS = allow_local
    key, _ = make_key("refused")
    operator = _user("orders_api.view_clientapikey", "orders_api.manage_webhooks")
    response = operator.post(
        f"/admin/orders_api/clientapikey/{key.pk}/webhooks/",
        {"action": "add", "url": endpoint, "events": ["order.shipped"]},
    )
    assert response.status_code == 200
    assert problem in response.content.decode()
    assert WebhookStore.from_env().for_client(key.client_id) == []


def test_a_viewer_sees_endpoints_but_cannot_change_them(
    webhook_env: dict, settings: Any, make_key: KeyMaker
) -> None:
    settings.WEBHOOKS_ALLOW_LOCAL_ENDPOINTS = True
    key, _ = make_key("watched")
    url = f"/admin/orders_api/clientapikey/{key.pk}/webhooks/"
    viewer = _user("orders_api.view_clientapikey")
    page = viewer.get(url)
    assert page.status_code == 200 and "Add an endpoint" not in page.content.decode()
    response = viewer.post(
        url, {"action": "add", "url": "http://127.0.0.1:9/h", "events": ["order.shipped"]}
    )
    assert response.status_code == 403
    assert WebhookStore.from_env().for_client(key.client_id) == []
    # And a staff member without the view permission gets 403 too
    assert _user().get(url).status_code == 403


def test_the_operator_and_admin_groups_hold_manage_webhooks() -> None:
    for name in ("operator", "admin"):
        group = Group.objects.get(name=name)
        assert group.permissions.filter(codename="manage_webhooks").exists(), name
    viewer = Group.objects.filter(name="viewer").first()
    if viewer is not None:
        assert not viewer.permissions.filter(codename="manage_webhooks").exists()


# -- Replaying an endpoint's dead letters (a DLQ replay job; Celery runs it eagerly here) --------


def _dead_letter(sqs: Any, dlq: str, client_id: str, subscription_id: str, event_id: str) -> None:
    body = {
        "EventId": event_id,
        "ClientId": client_id,
        "SubscriptionId": subscription_id,
        "OrderId": f"o-{event_id}",
        "Type": "order.shipped",
        "Attempt": 9,
        "FirstAttemptAt": 1_700_000_000,
        "DueAt": 1_700_090_000,
        "Reason": "HTTP 500",
    }
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(body))


def _drain(sqs: Any, queue_url: str) -> list[dict]:
    """Every message of the queue (received, so hidden for a while after)."""
    bodies: list[dict] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", [])
        if not batch:
            return bodies
        bodies += [json.loads(m["Body"]) if m["Body"].startswith("{") else m["Body"] for m in batch]


def _visible(sqs: Any, queue_url: str) -> int:
    """How many messages of the queue are visible (receives nothing)."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


@pytest.fixture
def dead_lettered(webhook_env: dict, settings: Any, make_key: KeyMaker) -> dict[str, Any]:
    """A key with two endpoints, and the DLQ holding 3 deliveries of the first, 2 of the
    second, 1 of another key and one message that is no delivery at all."""
    settings.WEBHOOKS_ALLOW_LOCAL_ENDPOINTS = True
    key, _ = make_key("replayed")
    other, _ = make_key("bystander")
    hooks = WebhookStore.from_env()

    def endpoint(client_id: str, path: str) -> str:
        return hooks.create(
            client_id=client_id,
            url=f"http://127.0.0.1:9/{path}",
            events=["order.shipped"],
            secret="whsec_test",
            created_by="test",
        ).subscription_id

    first, second = endpoint(key.client_id, "first"), endpoint(key.client_id, "second")
    elsewhere = endpoint(other.client_id, "other")
    sqs, dlq = webhook_env["sqs"], webhook_env["WEBHOOK_DLQ_URL"]
    for n in range(3):
        _dead_letter(sqs, dlq, key.client_id, first, f"first-{n}")
    for n in range(2):
        _dead_letter(sqs, dlq, key.client_id, second, f"second-{n}")
    _dead_letter(sqs, dlq, other.client_id, elsewhere, "other-0")
    sqs.send_message(QueueUrl=dlq, MessageBody="not a delivery")
    operator = _user(
        "orders_api.view_clientapikey", "orders_api.manage_webhooks", "operations.view_replayjob"
    )
    return {
        "key": key,
        "first": first,
        "operator": operator,
        "url": f"/admin/orders_api/clientapikey/{key.pk}/webhooks/",
        "press": {"key": key.pk, "subscription": first, "action": "replay"},
        **webhook_env,
    }


# Where the webhooks page's "Replay its dead letters" button posts.
START = "/admin/operations/replayjob/webhooks/start/"


def test_an_operator_replays_one_endpoints_dead_letters_as_a_job(dead_lettered: dict) -> None:
    from operations.models import AuditLogEntry, ReplayJob

    world = dead_lettered
    # Given the key's webhooks page offers the button
    page = world["operator"].get(world["url"]).content.decode()
    assert f'formaction="{START}"' in page and f'value="{world["key"].pk}"' in page

    # When the operator replays the first endpoint's dead letters
    response = world["operator"].post(START, world["press"])

    # Then a replay job of the webhook DLQ ran, and its page is where the operator lands
    job = ReplayJob.objects.get(queue=ReplayJob.Queue.WEBHOOK_DLQ)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/operations/replayjob/{job.pk}/change/"
    assert job.filters == {"client_id": world["key"].client_id, "subscription_id": world["first"]}
    assert job.state == ReplayJob.State.SUCCEEDED
    assert (job.sent, job.passed, job.left, job.failed) == (3, 3, 1, 0)
    # And exactly that endpoint's deliveries are queued again, each with a fresh retry window
    sqs = world["sqs"]
    queued = _drain(sqs, world["WEBHOOK_DELIVERIES_QUEUE_URL"])
    assert sorted(body["EventId"] for body in queued) == ["first-0", "first-1", "first-2"]
    assert all(body["Attempt"] == 0 for body in queued)
    assert not any({"DueAt", "FirstAttemptAt", "Reason"} & set(body) for body in queued)
    # And everything else is still in the DLQ
    kept = _drain(sqs, world["WEBHOOK_DLQ_URL"])
    events = sorted(body["EventId"] for body in kept if isinstance(body, dict))
    assert events == ["other-0", "second-0", "second-1"]
    assert "not a delivery" in kept
    # And the job's page says so and leads back to the key's webhooks; the key's page lists it
    page = world["operator"].get(response["Location"]).content.decode()
    assert "Replay finished: 3 moved, 0 failed, 0 skipped, 1 left, 3 not in scope." in page
    assert f'href="{world["url"]}" id="job-source"' in page
    listing = world["operator"].get(
        f"/admin/operations/replayjob/?client_id={world['key'].client_id}"
    )
    assert f"/admin/operations/replayjob/{job.pk}/change/" in listing.content.decode()
    # And the replay is in the audit log under the operator's name
    entry = AuditLogEntry.objects.get(object_id=str(job.pk), action="dlq_replay")
    assert entry.detail["queue"] == "webhook-dlq" and entry.detail["sent"] == 3


def test_a_second_replay_is_refused_while_one_is_unfinished(dead_lettered: dict) -> None:
    from operations.models import ReplayJob

    world = dead_lettered
    ReplayJob.objects.create(
        actor="someone",
        queue=ReplayJob.Queue.WEBHOOK_DLQ,
        state=ReplayJob.State.RUNNING,
        filters={"client_id": "another-key"},
    )
    # When the operator asks for another replay of the same DLQ
    response = world["operator"].post(START, world["press"], follow=True)
    # Then it is refused on the key's webhooks page, and nothing moved
    assert response.redirect_chain == [(world["url"], 302)]
    assert "Refused: Another replay of this queue is running" in response.content.decode()
    assert ReplayJob.objects.filter(queue=ReplayJob.Queue.WEBHOOK_DLQ).count() == 1
    assert _drain(world["sqs"], world["WEBHOOK_DELIVERIES_QUEUE_URL"]) == []
    assert len(_drain(world["sqs"], world["WEBHOOK_DLQ_URL"])) == 7


def test_with_the_deliveries_queue_gone_the_dead_letters_stay(dead_lettered: dict) -> None:
    from operations.models import ReplayJob

    world = dead_lettered
    # Given the deliveries queue was deleted on the SQS server
    world["sqs"].delete_queue(QueueUrl=world["WEBHOOK_DELIVERIES_QUEUE_URL"])
    # When the operator replays the endpoint's dead letters
    world["operator"].post(START, world["press"])
    # Then each of its deliveries failed to send, and every message is still in the DLQ
    job = ReplayJob.objects.get(queue=ReplayJob.Queue.WEBHOOK_DLQ)
    assert (job.sent, job.failed) == (0, 3)
    assert len(_drain(world["sqs"], world["WEBHOOK_DLQ_URL"])) == 7


def test_a_viewer_cannot_replay_dead_letters(dead_lettered: dict) -> None:
    from operations.models import ReplayJob

    viewer = _user("orders_api.view_clientapikey", "operations.view_replayjob")
    response = viewer.post(START, dead_lettered["press"])
    assert response.status_code == 403
    assert not ReplayJob.objects.exists()
    assert len(_drain(dead_lettered["sqs"], dead_lettered["WEBHOOK_DLQ_URL"])) == 7


def test_a_replay_of_an_unknown_endpoint_or_by_get_starts_nothing(dead_lettered: dict) -> None:
    from operations.models import ReplayJob

    operator = dead_lettered["operator"]
    assert operator.get(START).status_code == 405
    gone = {**dead_lettered["press"], "subscription": "no-such-endpoint"}
    response = operator.post(START, gone, follow=True)
    assert response.redirect_chain == [(dead_lettered["url"], 302)]
    assert "That endpoint does not exist (any more). Nothing was started." in (
        response.content.decode()
    )
    assert not ReplayJob.objects.exists()
    assert len(_drain(dead_lettered["sqs"], dead_lettered["WEBHOOK_DLQ_URL"])) == 7


def test_manage_webhooks_steers_webhook_replays_only(dead_lettered: dict) -> None:
    from operations.models import ReplayJob

    # Given a member who manages webhooks but may not replay the order DLQs
    member = _user(
        "orders_api.view_clientapikey", "orders_api.manage_webhooks", "operations.view_replayjob"
    )
    webhook_job = ReplayJob.objects.create(
        actor="someone",
        queue=ReplayJob.Queue.WEBHOOK_DLQ,
        filters={"client_id": dead_lettered["key"].client_id},
    )
    orders_job = ReplayJob.objects.create(actor="someone", queue=ReplayJob.Queue.ORDERS_DLQ)
    # Then the webhook replay's cancel works for it, and the Orders DLQ replay's does not
    member.post(f"/admin/operations/replayjob/{webhook_job.pk}/cancel/")
    assert member.post(f"/admin/operations/replayjob/{orders_job.pk}/cancel/").status_code == 403
    webhook_job.refresh_from_db()
    orders_job.refresh_from_db()
    assert webhook_job.state == ReplayJob.State.CANCELLED
    assert orders_job.state == ReplayJob.State.QUEUED


def test_the_command_replays_one_keys_dead_letters_and_refuses_a_bad_call(
    dead_lettered: dict,
) -> None:
    import io

    from django.core.management import CommandError, call_command

    def run(*args: str) -> str:
        out = io.StringIO()
        call_command("replay_dlq", "--queue", "webhook-dlq", *args, stdout=out)
        return out.getvalue()

    # A replay of the webhook DLQ without a key, or as a dry run, is refused before anything
    with pytest.raises(CommandError, match="needs --client-id"):
        run()
    with pytest.raises(CommandError, match="--dry-run is for the Orders DLQ"):
        run("--client-id", dead_lettered["key"].client_id, "--dry-run")
    with pytest.raises(CommandError, match="for --queue webhook-dlq only"):
        call_command("replay_dlq", "--client-id", "x")
    assert _visible(dead_lettered["sqs"], dead_lettered["WEBHOOK_DLQ_URL"]) == 7

    # With the key (and no endpoint), both of its endpoints' deliveries go back
    output = run("--client-id", dead_lettered["key"].client_id, "--rate", "500")
    assert "Replay finished: 5 moved, 0 failed, 0 skipped, 1 left, 1 not in scope." in output
    queued = _drain(dead_lettered["sqs"], dead_lettered["WEBHOOK_DELIVERIES_QUEUE_URL"])
    assert sorted(b["EventId"] for b in queued) == [
        "first-0",
        "first-1",
        "first-2",
        "second-0",
        "second-1",
    ]


def test_a_replay_that_cannot_reach_the_broker_fails_at_once_and_says_so(
    dead_lettered: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombu.exceptions import OperationalError

    from operations.models import ReplayJob
    from operations.tasks import replay_dlq

    # Given a broker that refuses the job (as kombu does when Redis is down)
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr(replay_dlq, "apply_async", refuse)
    # When the operator replays the endpoint's dead letters
    response = dead_lettered["operator"].post(START, dead_lettered["press"], follow=True)
    # Then they are back on the key's page, told why; the job is failed and nothing moved
    assert response.redirect_chain == [(dead_lettered["url"], 302)]
    assert "The replay could not start: could not queue the job" in response.content.decode()
    assert ReplayJob.objects.get().state == ReplayJob.State.FAILED
    assert _visible(dead_lettered["sqs"], dead_lettered["WEBHOOK_DLQ_URL"]) == 7
    assert _drain(dead_lettered["sqs"], dead_lettered["WEBHOOK_DELIVERIES_QUEUE_URL"]) == []
    # And the key's history says it did not start
    history = LogEntry.objects.filter(object_id=str(dead_lettered["key"].pk)).latest("action_time")
    assert history.change_message.startswith("Could not start replay job")
