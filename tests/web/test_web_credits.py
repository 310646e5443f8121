"""/credits, the nav balance badge, /admin/users grants and /admin/codes: paging, redeem-once, 403, ledger = balance."""
import re

import sqlalchemy as sa
from web_client import web  # noqa: F401  (web is a fixture)

from extensions import db
from models import CreditTransaction, RedemptionCode, User, credit

MICRO = 1_000_000
RAW_CODE = re.compile(r"gw-[A-Za-z0-9_\-]{20,}")
LEDGER_ROW = re.compile(r'<tr id="tx-(\d+)">')


def user_id(app, username):
    with app.app_context():
        return db.session.scalar(sa.select(User.id).where(User.username == username))


def balance_and_ledger(app, username):
    """(balance, sum of the ledger, number of ledger rows) for `username`, in micro-USD."""
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        rows = db.session.scalars(sa.select(CreditTransaction.amount).where(CreditTransaction.user_id == user.id)).all()
        return user.balance, sum(rows), len(rows)


def grant(app, username, micro, note="test"):
    with app.app_context():
        credit.grant(user_id(app, username), micro, description=note)
        db.session.commit()


def create_codes(admin, **form):
    """Create a batch through /admin/codes (htmx); returns the raw codes shown in the answer."""
    response = admin.post("/admin/codes", data={"count": "1", "batch": "", **form})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["HX-Trigger"] == "codes-created"
    return RAW_CODE.findall(response.get_data(as_text=True))


def test_ledger_is_paged_newest_first_and_loads_older_entries(app, web):
    bob = web("bob")
    assert "No credit movements yet" in bob.get("/credits").get_data(as_text=True)
    for i in range(30):
        grant(app, "bob", MICRO + i, note=f"grant number {i}")
    page = bob.get("/credits").get_data(as_text=True)
    first = [int(i) for i in LEDGER_ROW.findall(page)]
    assert len(first) == 25 and first == sorted(first, reverse=True)
    assert "grant number 29" in page and "grant number 4" not in page and "No credit movements" not in page
    before = int(re.search(r'hx-get="/credits/ledger\?before=(\d+)"', page).group(1))
    assert before == first[-1]

    more = bob.get(f"/credits/ledger?before={before}", headers={"HX-Request": "true"})
    rows = more.get_data(as_text=True)
    older = [int(i) for i in LEDGER_ROW.findall(rows)]
    assert len(older) == 5 and max(older) < min(first)
    assert "<html" not in rows and "Load older entries" not in rows and "No credit movements" not in rows
    assert "grant number 0" in rows

    plain = bob.get(f"/credits/ledger?before={before}")            # no JavaScript: the full page, older rows
    assert plain.status_code == 302 and plain.location.endswith(f"/credits?before={before}")
    assert LEDGER_ROW.findall(bob.get(plain.location).get_data(as_text=True)) == [str(i) for i in older]
    assert "Balance" in page and "30.00" in page and "30.000435" not in page     # 30 credits + 435 micro, to the cent


def test_ledger_shows_only_ones_own_rows(app, web):
    web("root")
    bob, carol = web("bob"), web("carol")
    grant(app, "carol", 5 * MICRO, note="secret grant for carol")
    assert "secret grant for carol" not in bob.get("/credits").get_data(as_text=True)
    rows = bob.get("/credits/ledger", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "secret grant for carol" not in rows
    assert "secret grant for carol" in carol.get("/credits").get_data(as_text=True)


def test_redeem_adds_the_credits_once_and_triggers_the_badge(app, web):
    admin, bob, carol = web("root"), web("bob"), web("carol")
    [code] = create_codes(admin, package="25")
    redeemed = bob.post("/credits/redeem", data={"code": f"  {code} "})
    html = redeemed.get_data(as_text=True)
    assert redeemed.status_code == 200 and redeemed.headers["HX-Trigger"] == "credits-changed"
    assert "Added 27.50 credits. Your balance is now 27.50 credits." in html
    assert balance_and_ledger(app, "bob") == (27_500_000, 27_500_000, 1)
    badge = bob.get("/credits/badge").get_data(as_text=True)
    assert 'id="credit-badge"' in badge and ">27.50</span>" in badge and "<html" not in badge
    assert "27.50" in bob.get("/credits/balance").get_data(as_text=True)
    assert ">27.50</span>" in bob.get("/models").get_data(as_text=True)           # the badge is in every page's nav
    assert "redemption code" in bob.get("/credits/ledger", headers={"HX-Request": "true"}).get_data(as_text=True)

    for user in (bob, carol):                       # a used code is refused, to anyone, and changes nothing
        again = user.post("/credits/redeem", data={"code": code})
        assert again.status_code == 422 and "HX-Trigger" not in again.headers
        assert "does not exist or was already redeemed" in again.get_data(as_text=True)
    assert balance_and_ledger(app, "bob") == (27_500_000, 27_500_000, 1)
    assert balance_and_ledger(app, "carol") == (0, 0, 0)


def test_unknown_or_empty_code_leaves_the_balance_unchanged(app, web):
    web("root")
    bob = web("bob")
    grant(app, "bob", 2 * MICRO)
    for code, message in (("gw-not-a-real-code-at-all", "does not exist or was already redeemed"),
                          ("   ", "Paste a redemption code first"), ("x" * 101, "That is not a redemption code")):
        refused = bob.post("/credits/redeem", data={"code": code})
        assert refused.status_code == 422 and message in refused.get_data(as_text=True)
        assert "HX-Trigger" not in refused.headers
    assert balance_and_ledger(app, "bob") == (2 * MICRO, 2 * MICRO, 1)
    plain = bob.post("/credits/redeem", data={"code": "gw-wrong"}, htmx=False)     # no JavaScript: flash + redirect
    assert plain.status_code == 302
    assert "does not exist or was already redeemed" in bob.get("/credits").get_data(as_text=True)


def test_plain_form_redeem_redirects_with_the_new_balance(app, web):
    admin, bob = web("root"), web("bob")
    [code] = create_codes(admin, amount="3.25")
    response = bob.post("/credits/redeem", data={"code": code}, htmx=False)
    assert response.status_code == 302 and response.location.endswith("/credits")
    page = bob.get("/credits").get_data(as_text=True)
    assert "Your balance is now 3.25 credits." in page and "No credit movements yet" not in page


def test_admin_pages_answer_403_to_users_and_change_nothing(app, web):
    web("root")
    bob = web("bob")
    for path in ("/admin/users", "/admin/codes", "/admin"):
        assert bob.get(path).status_code == 403
    assert bob.post("/admin/codes", data={"package": "100", "count": "5"}).status_code == 403
    assert bob.post(f"/admin/users/{user_id(app, 'bob')}/grant", data={"amount": "100"}).status_code == 403
    assert balance_and_ledger(app, "bob") == (0, 0, 0)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(RedemptionCode.id))) == 0
    anonymous = app.test_client().get("/admin/users")
    assert anonymous.status_code == 302 and "/login" in anonymous.location
    assert 'href="/admin"' not in bob.get("/credits").get_data(as_text=True)


def test_admin_grant_writes_one_ledger_row_and_the_balance_is_the_ledger_sum(app, web):
    admin = web("root")
    bob = web("bob")
    listing = admin.get("/admin/users").get_data(as_text=True)
    assert "bob" in listing and "root" in listing and 'href="/admin/activity"' in listing
    bob_id = user_id(app, "bob")
    granted = admin.post(f"/admin/users/{bob_id}/grant", data={"amount": "10.5", "note": "welcome aboard"})
    row = granted.get_data(as_text=True)
    assert granted.status_code == 200 and granted.headers["HX-Trigger"] == "credits-changed"
    assert f'<tr id="user-{bob_id}">' in row and "Granted 10.50 credits; balance now 10.50." in row
    assert balance_and_ledger(app, "bob") == (10_500_000, 10_500_000, 1)

    taken = admin.post(f"/admin/users/{bob_id}/grant", data={"amount": "-0.1", "note": ""})
    assert taken.status_code == 200 and "Took back 0.10 credits; balance now 10.40." in taken.get_data(as_text=True)
    assert balance_and_ledger(app, "bob") == (10_400_000, 10_400_000, 2)
    with app.app_context():
        notes = db.session.scalars(sa.select(CreditTransaction.description).where(CreditTransaction.user_id == bob_id)
                                   .order_by(CreditTransaction.id)).all()
    assert notes == ["welcome aboard", "granted by root"]
    ledger = bob.get("/credits").get_data(as_text=True)
    assert "welcome aboard" in ledger and "take-back" in ledger and "-0.10" in ledger
    assert "10.40" in admin.get("/admin/users").get_data(as_text=True)


def test_take_back_beyond_what_is_available_is_refused_with_no_row_written(app, web):
    admin = web("root")
    web("bob")
    bob_id = user_id(app, "bob")
    grant(app, "bob", 5 * MICRO)
    too_much = admin.post(f"/admin/users/{bob_id}/grant", data={"amount": "-5.01"})
    assert too_much.status_code == 422 and "HX-Trigger" not in too_much.headers
    refusal = "Cannot take back 5.01: bob has only 5.00 credits available. Nothing was changed."
    assert refusal in too_much.get_data(as_text=True)
    assert balance_and_ledger(app, "bob") == (5 * MICRO, 5 * MICRO, 1)

    with app.app_context():                         # credit held by a request in flight cannot be taken back either
        credit.reserve("req-in-flight", bob_id, None, 4 * MICRO)
    held = admin.post(f"/admin/users/{bob_id}/grant", data={"amount": "-2"})
    assert held.status_code == 422 and "has only 1.00 credits available" in held.get_data(as_text=True)
    for bad, message in (("abc", "must be a number"), ("0", "must not be zero"), ("", "must be a number"),
                         ("2000000", "At most 1,000,000 credits")):
        refused = admin.post(f"/admin/users/{bob_id}/grant", data={"amount": bad})
        assert refused.status_code == 422 and message in refused.get_data(as_text=True), bad
    assert balance_and_ledger(app, "bob") == (5 * MICRO, 5 * MICRO, 1)
    assert admin.post("/admin/users/9999/grant", data={"amount": "1"}).status_code == 404


def test_codes_are_shown_once_and_the_list_never_shows_a_code(app, web):
    admin, bob = web("root"), web("bob")
    assert "No codes yet" in admin.get("/admin/codes").get_data(as_text=True)
    codes = create_codes(admin, amount="7.5", count="3", batch="spring-promo")
    assert len(set(codes)) == 3
    with app.app_context():
        stored = db.session.scalars(sa.select(RedemptionCode)).all()
        assert {row.amount for row in stored} == {7_500_000} and {row.batch for row in stored} == {"spring-promo"}
        assert {row.created_by for row in stored} == {user_id(app, "root")}
        assert not any(code in (row.code_hash, row.last4) for row in stored for code in codes)
    bob.post("/credits/redeem", data={"code": codes[0]})

    for listing in (admin.get("/admin/codes").get_data(as_text=True),
                    admin.get("/admin/codes", headers={"HX-Request": "true", "HX-Target": "batch-rows"})
                    .get_data(as_text=True)):
        assert not RAW_CODE.search(listing) and not any(code in listing for code in codes)
        batch = re.search(r"spring-promo</th>(.*?)</tr>", listing, re.S).group(1)
        assert re.findall(r'<td class="num">([^<]+)', batch) == ["7.50", "3", "1"]

    plain = admin.post("/admin/codes", data={"package": "5", "count": "2", "batch": ""}, htmx=False)
    assert plain.status_code == 200 and plain.headers["Cache-Control"] == "no-store"
    assert len(set(RAW_CODE.findall(plain.get_data(as_text=True)))) == 2
    assert "package 5" in admin.get("/admin/codes").get_data(as_text=True)


def test_a_bad_batch_is_refused_and_creates_nothing(app, web):
    admin = web("root")
    for form, message in (({"package": "25", "amount": "3"}, "not both"), ({}, "Choose a package or type an amount"),
                          ({"package": "7"}, "Choose one of the listed packages"),
                          ({"amount": "0.001"}, "between 0.01 and 1,000,000"),
                          ({"amount": "5", "count": "1001"}, "between 1 and 1000"),
                          ({"amount": "5", "count": "0"}, "between 1 and 1000"),
                          ({"amount": "5", "count": "many"}, "whole number")):
        refused = admin.post("/admin/codes", data=form)
        assert refused.status_code == 422 and message in refused.get_data(as_text=True), form
        assert not RAW_CODE.search(refused.get_data(as_text=True))
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(RedemptionCode.id))) == 0


def test_posts_without_a_csrf_token_are_refused(app, web):
    admin, bob = web("root"), web("bob")
    [code] = create_codes(admin, amount="1")
    bob_id = user_id(app, "bob")
    htmx = {"HX-Request": "true"}
    assert bob.client.post("/credits/redeem", data={"code": code}, headers=htmx).status_code == 400
    assert admin.client.post(f"/admin/users/{bob_id}/grant", data={"amount": "5"}, headers=htmx).status_code == 400
    assert admin.client.post("/admin/codes", data={"amount": "5"}, headers=htmx).status_code == 400
    assert bob.client.post("/credits/redeem", data={"code": code, "csrf_token": "forged"}).status_code == 400
    assert balance_and_ledger(app, "bob") == (0, 0, 0)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(RedemptionCode.id))) == 1
    assert bob.post("/credits/redeem", data={"code": code}).status_code == 200       # the code was never spent


def test_cli_reads_amounts_like_the_pages(app):
    """`flask credits codes/grant` share the pages' parsing: 0.1 credit is exactly 100,000 micro-USD."""
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "create", "dora", "--password", "long-enough"]).exit_code == 0
    assert runner.invoke(args=["credits", "grant", "--user", "dora", "--amount", "0.1"]).exit_code == 0
    assert balance_and_ledger(app, "dora") == (100_000, 100_000, 1)
    result = runner.invoke(args=["credits", "codes", "--package", "50", "--count", "2"])
    assert result.exit_code == 0 and len(RAW_CODE.findall(result.output)) == 2
    both = runner.invoke(args=["credits", "codes", "--package", "50", "--amount", "1"])
    assert both.exit_code != 0 and "exactly one" in both.output
    with app.app_context():
        assert set(db.session.scalars(sa.select(RedemptionCode.amount))) == {57_500_000}
        assert set(db.session.scalars(sa.select(RedemptionCode.batch))) == {"package 50"}


def test_refused_grant_and_redeem_keep_what_was_typed(app, web):
    """A refused form comes back filled in: the admin's amount and note, the user's mistyped code."""
    admin, bob = web("root"), web("bob")
    refused = admin.post(f"/admin/users/{user_id(app, 'bob')}/grant", data={"amount": "12,5", "note": "March bonus"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'value="12,5"' in html and 'value="March bonus"' in html
    assert '<details class="grant" open>' in html
    mistyped = bob.post("/credits/redeem", data={"code": "gw-typo-in-the-code"})
    assert mistyped.status_code == 422 and 'value="gw-typo-in-the-code"' in mistyped.get_data(as_text=True)
    assert balance_and_ledger(app, "bob") == (0, 0, 0)
