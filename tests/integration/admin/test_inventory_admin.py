"""The Inventory admin page against DynamoDB Local: each role, search / filter / sort / pages
from the catalogue, guarded edits and stock, bulk actions, CSV export and the import job."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from operations import catalogue
from operations.models import AuditLogEntry, BackgroundJob
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem
from pipeline.orders import order_submit
from pipeline.reservation import inventory_reserve
from tests.integration.admin.conftest import csrf_post

pytestmark = pytest.mark.integration

BASE = "/admin/operations/inventoryitem/"
Outcome = AuditLogEntry.Outcome


@pytest.fixture(autouse=True)
def fresh_catalogue(store: DynamoStore) -> Iterator[None]:
    """Each test starts with the catalogue rebuilt from its table (what beat does)."""
    catalogue.reset_for_tests()
    yield
    catalogue.reset_for_tests()


def _name(prefix: str = "adm") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _item(store: DynamoStore, stock: int = 5, price: str = "9.99", **kw: Any) -> str:
    name = kw.pop("name", None) or _name()
    assert store.inventory_put_if_absent(InventoryItem(name, stock, Decimal(price), **kw))
    return name


def _refresh() -> None:
    catalogue.catalogue().refresh()


def _rows(page: str) -> list[str]:
    """The item names of a changelist page, in order."""
    marker = '<tr data-pk="'
    return [chunk.split('"', 1)[0] for chunk in page.split(marker)[1:]]


# -- roles --------------------------------------------------------------------------------------


def test_a_viewer_sees_the_inventory_but_cannot_change_it(role_client: Any, store: DynamoStore):
    # Given an item and a viewer
    name = _item(store, stock=5)
    _refresh()
    viewer = role_client("viewer")

    # When they open the list and the item
    listing = viewer.get(BASE, {"q": name}).content.decode()
    detail = viewer.get(f"{BASE}{name}/change/").content.decode()

    # Then they see it, with no button to change anything
    assert _rows(listing) == [name]
    assert 'id="inventory-add"' not in listing and 'id="inventory-import"' not in listing
    assert 'name="action"' not in listing
    assert 'id="item-restock"' not in detail and 'id="item-delete"' not in detail
    # And every change page and every change is refused with 403, nothing written
    for page in ("create/", f"{name}/edit/", f"{name}/restock/", f"{name}/set-stock/",
                 f"{name}/remove/", "import/"):  # fmt: skip
        assert viewer.get(BASE + page).status_code == 403, page
    posts = {
        f"{name}/restock/": {"delta": 5, "reason": "x"},
        f"{name}/set-stock/": {"stock": 50, "seen_stock": 5, "reason": "x"},
        f"{name}/remove/": {"reason": "x"},
        "create/": {"item_name": _name(), "stock": 1, "price": "1"},
    }
    for page, data in posts.items():
        assert csrf_post(viewer, BASE + page, data).status_code == 403, page
    bulk = {"action": "restock", "_selected_action": [name], "post": "yes", "delta": 5}
    assert csrf_post(viewer, BASE, {**bulk, "reason": "x"}).status_code == 403
    assert store.inventory_get(name).stock == 5  # type: ignore[union-attr]
    assert not AuditLogEntry.objects.exists()


def test_anonymous_visitors_get_the_login_page(db: None, store: DynamoStore):
    name = _item(store)
    for page in ("", f"{name}/change/", f"{name}/restock/", "import/", "export/"):
        response = Client().get(BASE + page)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], page


def test_an_operator_restocks_an_item_and_it_is_audited(role_client: Any, store: DynamoStore):
    # Given an item with 5 in stock and an operator on its page
    name = _item(store, stock=5)
    operator = role_client("operator")
    detail = operator.get(f"{BASE}{name}/change/").content.decode()
    assert 'id="item-restock"' in detail

    # When they restock it by 7
    response = csrf_post(operator, f"{BASE}{name}/restock/", {"delta": 7, "reason": "delivery"})

    # Then the stock is 12, the entry says before and after, and the list shows it
    assert response.status_code == 302
    assert store.inventory_get(name).stock == 12  # type: ignore[union-attr]
    entry = AuditLogEntry.objects.get(object_id=name)
    assert (entry.outcome, entry.before, entry.after) == (
        Outcome.SUCCEEDED,
        {"stock": 5},
        {"delta": 7, "stock": 12},
    )
    assert entry.reason == "delivery"


# -- search, filter, sort, pages ------------------------------------------------------------------


def test_search_filter_sort_and_pages(role_client: Any, store: DynamoStore):
    # Given 60 items of one family (a few low on stock, one described as "vintage")
    family = f"fam{uuid.uuid4().hex[:6]}"
    names = []
    for n in range(60):
        names.append(
            _item(
                store,
                name=f"{family}-{n:02d}",
                stock=n,
                price=f"{100 - n}.00",
                description="vintage brass" if n == 42 else "",
                low_stock_threshold=5 if n == 20 else None,
            )
        )
    _refresh()
    viewer = role_client("viewer")

    # When they search by substring, by description, by name prefix
    by_part = _rows(viewer.get(BASE, {"q": f"{family}-1"}).content.decode())
    by_description = _rows(viewer.get(BASE, {"q": "VINTAGE brass"}).content.decode())
    by_prefix = _rows(viewer.get(BASE, {"q": f"^{family}-5"}).content.decode())
    no_prefix = _rows(viewer.get(BASE, {"q": f"^{family[1:]}"}).content.decode())

    # Then each finds exactly its items
    assert by_part == [f"{family}-{n}" for n in range(10, 20)]
    assert f"{family}-42" in by_description
    assert by_prefix == [f"{family}-{n}" for n in range(50, 60)]
    assert no_prefix == []

    # And the low-stock filter keeps stock <= the item's threshold (default 10; item 20: 5)
    low = _rows(viewer.get(BASE, {"q": family, "low_stock": "yes"}).content.decode())
    assert low == [f"{family}-{n:02d}" for n in range(0, 11)]

    # And sorting by price descending, then paging with the cursor, walks every item once
    seen: list[str] = []
    page = viewer.get(BASE, {"q": family, "o": "-price"}).content.decode()
    while True:
        seen += _rows(page)
        if 'id="page-next"' not in page:
            break
        next_url = page.split('id="page-next"')[0].rsplit('href="', 1)[1].split('"')[0]
        page = viewer.get(BASE + next_url.replace("&amp;", "&")).content.decode()
    assert seen == sorted(names, key=lambda n: -(100 - int(n[-2:])))
    # An edited cursor is refused, not trusted
    assert viewer.get(BASE, {"q": family, "cursor": "forged"}).status_code == 302


def test_a_page_view_reads_the_catalogue_not_the_table(role_client: Any, store: DynamoStore):
    # Given an item in the catalogue, then one written straight to the table (not the portal)
    family = f"cat{uuid.uuid4().hex[:6]}"
    first = _item(store, name=f"{family}-a", stock=3)
    _refresh()
    second = _item(store, name=f"{family}-b", stock=4)
    viewer = role_client("viewer")

    # When the list is searched before and after the catalogue's rebuild
    before = _rows(viewer.get(BASE, {"q": family}).content.decode())
    _refresh()
    after = _rows(viewer.get(BASE, {"q": family}).content.decode())

    # Then the outside write appears only after the rebuild (the staleness bound)
    assert before == [first] and after == [first, second]
    # And a change made through the portal is there at once
    operator = role_client("operator")
    created = csrf_post(
        operator, BASE + "create/", {"item_name": f"{family}-c", "stock": 1, "price": "2.00"}
    )
    assert created.status_code == 302
    assert _rows(viewer.get(BASE, {"q": family}).content.decode())[-1] == f"{family}-c"


def test_low_stock_count_follows_the_thresholds(db: None, store: DynamoStore):
    family = f"low{uuid.uuid4().hex[:6]}"
    _refresh()
    before = catalogue.low_stock_count()
    _item(store, name=f"{family}-a", stock=2)
    _item(store, name=f"{family}-b", stock=50, low_stock_threshold=60)
    _item(store, name=f"{family}-c", stock=50)
    _refresh()
    assert catalogue.low_stock_count() == before + 2


# -- guarded edits -------------------------------------------------------------------------------


def test_two_editors_the_second_is_told_and_overwrites_nothing(
    role_client: Any, store: DynamoStore
):
    # Given two operators who opened the same item's edit page
    name = _item(store, stock=5, price="10.00", description="old")
    alice, bob = role_client("operator"), role_client("operator")
    form_a = alice.get(f"{BASE}{name}/edit/").content.decode()
    bob.get(f"{BASE}{name}/edit/")
    seen = form_a.split('name="seen" value="')[1].split('"')[0]

    # When Alice saves a price, then Bob saves another on what he saw
    data = {"description": "x", "low_stock_threshold": "", "seen": seen}
    first = csrf_post(alice, f"{BASE}{name}/edit/", {**data, "price": "11.00"})
    second = csrf_post(bob, f"{BASE}{name}/edit/", {**data, "price": "99.00"})

    # Then Alice's price stands, Bob is told it changed meanwhile, and nothing of his is saved
    assert first.status_code == 302
    assert second.status_code == 200
    assert "changed meanwhile" in second.content.decode()
    assert store.inventory_get(name).price == Decimal("11.00")  # type: ignore[union-attr]
    assert AuditLogEntry.objects.filter(object_id=name).count() == 1


def test_set_stock_is_refused_when_an_order_reserved_meanwhile(
    role_client: Any, store: DynamoStore
):
    # Given an operator who saw stock 10, and an order that then reserves 4
    name = _item(store, stock=10)
    operator = role_client("operator")
    operator.get(f"{BASE}{name}/set-stock/")
    order = order_submit(store=store, customer_name="Buyer", items=[{"ItemName": name,
                                                                    "Quantity": 4}])  # fmt: skip
    inventory_reserve(store=store, order_id=order.order_id)

    # When they set the stock to 30 on what they saw
    response = csrf_post(
        operator, f"{BASE}{name}/set-stock/", {"stock": 30, "seen_stock": 10, "reason": "count"}
    )

    # Then it is refused, showing the new stock, and the reservation stands
    assert response.status_code == 200
    assert "it is now 6" in response.content.decode()
    assert store.inventory_get(name).stock == 6  # type: ignore[union-attr]
    entry = AuditLogEntry.objects.get(object_id=name)
    assert entry.outcome == Outcome.REFUSED


def test_delete_then_bulk_restock_through_the_confirmation_page(
    role_client: Any, store: DynamoStore
):
    # Given two items and an operator
    a, b = _item(store, stock=1), _item(store, stock=2)
    operator = role_client("operator")

    # When they choose "Restock selected" for both: first the confirmation page, then yes
    chosen = {"action": "restock", "_selected_action": [a, b]}
    confirm = csrf_post(operator, BASE, chosen)
    done = csrf_post(operator, BASE, {**chosen, "post": "yes", "delta": 3, "reason": "delivery"})

    # Then nothing changed before the yes, and both moved by 3 after it
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    assert done.status_code == 302
    assert [store.inventory_get(n).stock for n in (a, b)] == [4, 5]  # type: ignore[union-attr]

    # And deleting one asks for a reason, then removes it
    assert csrf_post(operator, f"{BASE}{a}/remove/", {"reason": ""}).status_code == 200
    assert store.inventory_get(a) is not None
    assert csrf_post(operator, f"{BASE}{a}/remove/", {"reason": "discontinued"}).status_code == 302
    assert store.inventory_get(a) is None


def test_forms_carry_csrf_tokens_and_refuse_posts_without(role_client: Any, store: DynamoStore):
    name = _item(store)
    operator = role_client("operator")
    for page in ("create/", f"{name}/edit/", f"{name}/restock/", f"{name}/set-stock/",
                 f"{name}/remove/", "import/"):  # fmt: skip
        body = operator.get(BASE + page).content.decode()
        assert body.count('method="post"') == body.count("csrfmiddlewaretoken") >= 1, page
    refused = operator.post(f"{BASE}{name}/restock/", {"delta": 1, "reason": "x"})
    assert refused.status_code == 403
    assert store.inventory_get(name).stock == 5  # type: ignore[union-attr]


# -- CSV ------------------------------------------------------------------------------------------


def test_export_streams_every_item_in_the_import_columns(role_client: Any, store: DynamoStore):
    name = _item(store, stock=3, price="4.50", description='with, "quotes"', low_stock_threshold=2)
    response = role_client("viewer").get(BASE + "export/")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["ItemName", "Stock", "Price", "Description", "LowStockThreshold"]
    assert [name, "3", "4.50", 'with, "quotes"', "2"] in rows


def _import(client: Any, text: str, capture: Any) -> BackgroundJob:
    upload = SimpleUploadedFile("stock.csv", text.encode(), content_type="text/csv")
    with capture(execute=True):
        response = csrf_post(client, BASE + "import/", {"file": upload, "reason": "count"})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = BackgroundJob.objects.get(pk=response["Location"].rstrip("/").rsplit("/", 1)[1])
    assert job.state == BackgroundJob.State.SUCCEEDED, job.error
    return job


def test_import_a_bad_file_writes_nothing_then_a_good_one_applies_once(
    role_client: Any, store: DynamoStore, django_capture_on_commit_callbacks: Any
):
    # Given an existing item, and a file that sets it and creates another, with a bad row
    family = f"imp{uuid.uuid4().hex[:6]}"
    existing = _item(store, name=f"{family}-old", stock=5, price="1.00")
    new = f"{family}-new"
    header = "ItemName,Stock,Price,Description,LowStockThreshold\n"
    bad = header + f"{existing},8,1.00,,\n{new},3,2.50,fresh,\n{family}-x,-1,1.00,,\n"
    operator = role_client("operator")

    # When the bad file is imported
    job = _import(operator, bad, django_capture_on_commit_callbacks)

    # Then the job names line 4 and why, and nothing was written or audited as done
    assert job.result["valid"] is False
    assert job.result["errors"] == [{"line": 4, "reason": "Stock: must be 0 or more"}]
    page = operator.get(f"{BASE}import/{job.pk}/").content.decode()
    assert 'class="import-line">4<' in page and "Nothing was imported" in page
    assert store.inventory_get(new) is None
    assert store.inventory_get(existing).stock == 5  # type: ignore[union-attr]
    assert not AuditLogEntry.objects.filter(outcome=Outcome.SUCCEEDED).exists()

    # When the corrected file is imported
    good = header + f"{existing},8,1.00,,\n{new},3,2.50,fresh,4\n"
    job = _import(operator, good, django_capture_on_commit_callbacks)

    # Then the existing item is set, the new one created, each change audited
    assert (job.result["created"], job.result["updated"], job.result["unchanged"]) == (1, 1, 0)
    assert (job.progress, job.total) == (2, 2)
    assert store.inventory_get(existing).stock == 8  # type: ignore[union-attr]
    assert store.inventory_get(new) == InventoryItem(new, 3, Decimal("2.50"), "fresh", 4)
    audited = AuditLogEntry.objects.filter(outcome=Outcome.SUCCEEDED).count()
    assert audited == 2

    # When the same file is imported again, it changes nothing and writes no entry
    job = _import(operator, good, django_capture_on_commit_callbacks)
    assert (job.result["created"], job.result["updated"], job.result["unchanged"]) == (0, 0, 2)
    assert AuditLogEntry.objects.filter(outcome=Outcome.SUCCEEDED).count() == audited
    # And the import page shows the outcome
    assert (
        "0 created, 0 updated, 2 unchanged"
        in operator.get(f"{BASE}import/{job.pk}/").content.decode()
    )


def test_a_viewer_cannot_import(role_client: Any, store: DynamoStore):
    upload = SimpleUploadedFile("x.csv", b"ItemName,Stock,Price\na,1,1\n")
    viewer = role_client("viewer")
    assert csrf_post(viewer, BASE + "import/", {"file": upload}).status_code == 403
    assert not BackgroundJob.objects.exists()
