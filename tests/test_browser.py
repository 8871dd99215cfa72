"""A person's path through the web UI, in a real browser: log in, fill the trigger form, read the result.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; ``playwright
install`` would download a browser, which cannot work offline). The screenshots
it takes are the ones docs/getting-started.md shows.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from playwright.sync_api import expect, sync_playwright

from tests.staging import drop_tables

pytestmark = pytest.mark.system  # runs the DAG or the deployment's processes

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Root needs --no-sandbox; the rest keeps Chromium off the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FORM = [  # (section, param, value): a small custom run
    ("Source", "mongo_database", "tests"),
    ("Source", "mongo_collection", "browser_users"),
    ("Source", "seed_users", "3000"),
    ("Pages", "items_per_page", "1000"),
    ("Target", "target_table", "browser_users"),
]


@pytest.fixture
def browser_page(airflow_services):
    expect.set_options(timeout=30_000)  # a page of the UI can take seconds to render on a busy 2-core machine
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 900})
        browser.close()
    with MongoHook() as hook:
        hook.get_collection("browser_users", "tests").drop()
    with PostgresHook().get_conn() as conn:
        drop_tables(conn, "browser_users")


def test_a_person_triggers_a_custom_run_from_the_form_and_reads_its_outcome(airflow_services, browser_page):
    api, page = airflow_services, browser_page
    password = json.loads(
        (Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated").read_text()
    )["admin"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{api.url}/")
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/" not in url)  # signed in: a pattern would match the login URL too
    page.goto(f"{api.url}/dags/mongo_to_postgres")
    page.get_by_role("button", name="Trigger").first.click()
    form = page.get_by_role("dialog")
    for section, param, value in FORM:
        field = form.locator(f"[name=element_{param}]")
        if not field.is_visible():  # one section is open at a time
            form.get_by_role("button", name=section).click()
        field.fill(value)
    form.get_by_role("button", name="Source").click()
    expect(form.get_by_text("Users to seed")).to_be_visible()
    form.screenshot(path=SCREENSHOTS / "trigger-form.png")
    form.get_by_role("button", name="Trigger").click()

    page.wait_for_url(re.compile(r".*/dags/mongo_to_postgres/runs/.+"))
    run = api.wait(unquote(page.url.split("/runs/")[1].split("/")[0].split("?")[0]))
    assert run["state"] == "success"
    page.reload()
    expect(page.get_by_text("page 0: _id [")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "finished-run.png")

    report = api.result(run["dag_run_id"], "verify")["report"]
    assert "| Documents read | 3,000 |" in report and "| Pages | 3 |" in report
    with PostgresHook().get_conn() as conn:
        assert conn.execute("SELECT count(*) FROM public.browser_users").fetchone() == (3000,)
