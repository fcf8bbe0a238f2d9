"""The docs page at /kvs/v1-0-0/docs, in a real browser.

Starts the kvs-server binary (see ``clients/testing/kvs_process.py``) on an
ephemeral port with a temporary data directory, and drives Debian's headless Chromium (``/usr/bin/chromium``
through ``/usr/bin/chromedriver``, from the ``chromium`` and
``chromium-driver`` packages) over the page. A missing binary, browser or
driver fails the run. The page must show every operation of the document the
running server serves, grouped in the document's tag order (resource routes
before the original service's), and its "Try it" forms must reach the server.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from kvs_process import BASE_PATH, KvsServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# How long the page may take to react: it only talks to a local server.
PAGE_TIMEOUT = 10.0
# Every method a path item may hold, so that one the page leaves out shows up.
OPENAPI_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
RESOURCE_TAGS = ("values", "maps", "sets", "keys")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    # Containers often give /dev/shm only 64 MB, too little for Chromium.
    "--disable-dev-shm-usage",
    # Without these, Chromium tries (and here, offline, fails) many connections.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = KvsServer(tmp_path_factory.mktemp("kvs-data"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.is_file():
            pytest.fail(f"{path} is missing: install Debian's {package} package", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    driver_log = tmp_path_factory.mktemp("chromedriver") / "log"
    driver_log.touch()  # chromedriver may die before it writes one
    # A driver path of our own keeps selenium-manager (which downloads) out of it;
    # the log holds Chromium's own output too, for when it cannot start.
    service = Service(str(CHROMEDRIVER), service_args=["--enable-chrome-logs"], log_output=str(driver_log))
    failure = None
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as err:
        failure = f"Chromium ({CHROMIUM}) could not be started through {CHROMEDRIVER}: {err.msg}"
    if failure:
        # Out of the except block: selenium's chained trace would only hide the log.
        tail = driver_log.read_text(errors="replace").splitlines()[-8:]
        pytest.fail("\n".join([failure, "chromedriver's log ends:", *tail]), pytrace=False)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def documented_operations(doc: dict) -> set[tuple[str, str, str]]:
    """(first tag, METHOD, path) of each operation; untagged ones are shown under "other"."""
    return {
        ((op.get("tags") or ["other"])[0], method.upper(), path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in OPENAPI_METHODS
    }


def open_docs(browser: webdriver.Chrome, api: str) -> None:
    browser.get(f"{api}/docs")
    # The page renders everything at once when the document has arrived.
    WebDriverWait(browser, PAGE_TIMEOUT).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "section.tag, #meta.error"),
        "the docs page rendered nothing",
    )
    meta = browser.find_element(By.ID, "meta")
    assert "error" not in meta.get_attribute("class"), meta.text
    # Script errors and failed loads: reading the console also empties it.
    assert browser.get_log("browser") == []


def shown_operations(browser: webdriver.Chrome) -> list[tuple[str, str, str]]:
    """(group heading, METHOD, path) of each operation, as the page shows them."""
    shown = []
    for section in browser.find_elements(By.CSS_SELECTOR, "section.tag"):
        # textContent: the heading's CSS capitalizes the tag's name.
        tag = section.find_element(By.TAG_NAME, "h2").get_attribute("textContent")
        for summary in section.find_elements(By.CSS_SELECTOR, "details.op > summary"):
            method = summary.find_element(By.CLASS_NAME, "method").text
            path = summary.find_element(By.CLASS_NAME, "path").text
            shown.append((tag, method, path))
    return shown


def try_it_form(browser: webdriver.Chrome, operation_id: str) -> WebElement:
    op = browser.find_element(By.ID, operation_id)
    if op.get_attribute("open") is None:
        op.find_element(By.TAG_NAME, "summary").click()
    return op.find_element(By.CSS_SELECTOR, "form.try")


def field(form: WebElement, label: str) -> WebElement:
    return form.find_element(By.XPATH, f"./label[span[normalize-space()='{label}']]/*[2]")


def send(browser: webdriver.Chrome, form: WebElement) -> str:
    """Submits the form and returns what the page shows of the answer."""
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    out = form.find_element(By.CSS_SELECTOR, "pre.out")
    WebDriverWait(browser, PAGE_TIMEOUT).until(
        lambda _: "\nHTTP " in out.text or "Request failed" in out.text,
        "the page showed no answer",
    )
    return out.text


def test_the_page_shows_every_operation_of_the_served_document_under_its_tag(browser, api):
    documented = documented_operations(get_json(f"{api}/openapi.json"))
    open_docs(browser, api)
    shown = shown_operations(browser)
    assert len(shown) == len(set(shown)), "an operation is shown twice"
    assert set(shown) == documented


def test_the_resource_routes_come_before_the_compatibility_routes(browser, api):
    doc = get_json(f"{api}/openapi.json")
    declared = [t["name"] for t in doc["tags"]]
    used = {tag for tag, _, _ in documented_operations(doc)}
    open_docs(browser, api)
    headings = [
        h.get_attribute("textContent") for h in browser.find_elements(By.CSS_SELECTOR, "section.tag > h2")
    ]
    assert [h for h in headings if h in declared] == [t for t in declared if t in used]
    compatibility = headings.index("compatibility")
    assert all(headings.index(tag) < compatibility for tag in RESOURCE_TAGS), headings


def test_try_it_stores_a_str_value_and_reads_it_back(browser, api):
    key, value = "from_the_docs_page", "héllo from the docs page"
    open_docs(browser, api)

    put = try_it_form(browser, "putValue")
    Select(field(put, "type")).select_by_visible_text("str")
    field(put, "key").send_keys(key)
    Select(field(put, "body type")).select_by_visible_text("text/plain")
    body = put.find_element(By.TAG_NAME, "textarea")
    body.clear()
    body.send_keys(value)
    answer = send(browser, put)
    assert f"PUT {BASE_PATH}/str/{key}" in answer and "HTTP 200" in answer, answer

    get = try_it_form(browser, "getValue")
    Select(field(get, "type")).select_by_visible_text("str")
    field(get, "key").send_keys(key)
    answer = send(browser, get)
    assert "HTTP 200" in answer and answer.rstrip().endswith(value), answer

    with urllib.request.urlopen(f"{api}/str/{key}", timeout=10) as resp:
        assert resp.read().decode() == value
