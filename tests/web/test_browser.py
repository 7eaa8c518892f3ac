"""The web chat page in a real browser (Debian's Chromium, driven by Playwright) against a real hub.

Each person in a test has a browser context of its own (separate storage and WebSocket) on a hub
started for it — ``wslab serve`` as a subprocess, or ``Hub.start_in_thread`` — and checks what a
person would see: messages arriving, acks, history after a reload, direct messages reaching only
their target, user text shown as text, the 4001 state, recovery after a dropped connection, and a
phone-sized layout.

Waits use Playwright's auto-retrying ``expect`` with a generous timeout: nothing here measures
time. Where a test must show that something did *not* arrive, it first waits for a later message
that would have come after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Error,
    Locator,
    Page,
    Playwright,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from wslab.hub import Hub

pytestmark = pytest.mark.services

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Generous: a loaded CI machine may be slow, and every wait ends as soon as its condition holds.
WAIT_MS = 20_000
DEFAULT_VIEWPORT = {"width": 1280, "height": 720}
SECRET = "browser-tests-secret-0123456789abcdef"
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'

expect.set_options(timeout=WAIT_MS)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _chromium() -> Iterator[dict[str, Any]]:
    """One browser and a pool of warm tabs for the whole module.

    Starting Chromium and opening a tab (a renderer process) are the slow parts; navigating a
    tab that is already open is fast. Each pooled tab lives in its own context, so the people in
    a test never share storage.
    """
    holder: dict[str, Any] = {"pool": []}
    yield holder
    for page in holder["pool"]:
        with contextlib.suppress(Error):
            page.context.close()
    if "browser" in holder:
        holder["browser"].close()
        holder["playwright"].stop()


@pytest.fixture
def browser(chromium_path: str, _chromium: dict[str, Any]) -> Browser:
    """Chromium, launched on first use (``chromium_path`` skips or fails when it is absent)."""
    if "browser" not in _chromium:
        playwright: Playwright = sync_playwright().start()
        _chromium["playwright"] = playwright
        _chromium["browser"] = playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS
        )
    return _chromium["browser"]


@pytest.fixture
def open_page(browser: Browser, _chromium: dict[str, Any]) -> Iterator[Callable[..., Page]]:
    """Open the chat page for one more person: ``open_page(url, fresh=False, viewport=None)``.

    A person gets a pooled tab in a context of its own; ``fresh=True`` gives a new context for
    tests that change a tab beyond what can be undone (WebSocket routes). After the test each
    pooled tab forgets its sign-in (the next test may use the same hub) and goes blank.
    """
    pool: list[Page] = _chromium["pool"]
    used: list[Page] = []
    fresh: list[BrowserContext] = []

    def opener(
        url: str, *, new_context: bool = False, viewport: dict[str, int] | None = None
    ) -> Page:
        if new_context:
            context = browser.new_context()
            fresh.append(context)
            page = context.new_page()
        elif len(used) < len(pool):
            page = pool[len(used)]
            used.append(page)
        else:
            page = browser.new_context().new_page()
            pool.append(page)
            used.append(page)
        page.set_viewport_size(viewport or DEFAULT_VIEWPORT)
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        return page

    yield opener
    for page in used:
        try:
            if page.url.startswith("http"):
                page.evaluate("sessionStorage.clear()")
            page.goto("about:blank")
        except Error:
            pool.remove(page)  # a tab in an unknown state is not reused
            with contextlib.suppress(Error):
                page.context.close()
    for context in fresh:
        context.close()


@pytest.fixture
def guest_hub(tmp_path: Path) -> Iterator[Any]:
    """A hub without authentication (everyone a guest), on its own thread."""
    hub = Hub.start_in_thread(
        port=0, auth_required=False, database=f"sqlite:///{tmp_path}/chat.db", broker="memory://"
    )
    yield hub
    hub.stop()


@pytest.fixture
def auth_hub(tmp_path: Path) -> Iterator[Any]:
    """A hub that requires a JWT, on its own thread."""
    hub = Hub.start_in_thread(
        port=0,
        auth_required=True,
        jwt_secret=SECRET,
        database=f"sqlite:///{tmp_path}/chat.db",
        broker="memory://",
    )
    yield hub
    hub.stop()


class Served:
    """``wslab serve`` in a subprocess; its URL is read from the line it prints when ready."""

    def __init__(self, folder: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "wslab.cli",
            "serve",
            "--port",
            "0",
            "--no-auth",
            "--db",
            f"sqlite:///{folder}/chat.db",
            "--broker",
            "memory://",
        ]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=folder,
        )
        self.lines: list[str] = []  # the first 200, for the failure message
        self.url: str | None = None
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:  # keep draining: a full pipe would block the server
            if len(self.lines) < 200:
                self.lines.append(line)
            match = re.search(r"http://127\.0\.0\.1:\d+", line)
            if match and self.url is None:
                self.url = match.group(0)
                self._ready.set()
        self._ready.set()

    def wait_url(self, timeout: float = 30.0) -> str:
        """The hub's URL once it is listening (fails the test if it never says so)."""
        self._ready.wait(timeout)
        if self.url is None:
            pytest.fail("wslab serve printed no URL:\n" + "".join(self.lines))
        return self.url

    def stop(self) -> None:
        """SIGTERM (the hub closes every connection with 1001), then reap the process."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def _served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = Served(tmp_path_factory.mktemp("serve"))
    yield served
    served.stop()


@pytest.fixture
def served_url(_served: Served, browser: Browser) -> str:
    """The URL of ``wslab serve --port 0 --no-auth`` (it starts while Chromium launches)."""
    return _served.wait_url()


# -- helpers --------------------------------------------------------------------------------------


def sign_in_as_guest(page: Page) -> str:
    """Continue as a guest; returns the user id the hub gave us (guests' names are their ids)."""
    expect(page.get_by_test_id("token-input")).to_be_hidden()
    page.get_by_test_id("guest-login-button").click()
    return wait_connected(page)


def sign_in_with_token(page: Page, token: str) -> str:
    """Paste a token and connect; returns the name shown for us."""
    expect(page.get_by_test_id("guest-login-button")).to_be_hidden()
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("token-login-button").click()
    return wait_connected(page)


def wait_connected(page: Page) -> str:
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    expect(page.locator('[data-testid=room-item][data-room="lobby"]')).to_have_attribute(
        "aria-current", "true"
    )
    name = page.get_by_test_id("current-user").text_content()
    assert name
    return name


def sees_in_presence(page: Page, user_id: str) -> None:
    expect(page.locator(f'[data-testid=presence-user][data-user-id="{user_id}"]')).to_be_visible()


def send(page: Page, text: str) -> None:
    """Type a message and press Enter (the keyboard path, not a click)."""
    box = page.get_by_test_id("message-input")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def message(page: Page, text: str) -> Locator:
    """The message lines whose content is exactly ``text`` (in any conversation)."""
    return page.locator("[data-testid=message]").filter(
        has=page.get_by_test_id("message-content").get_by_text(text, exact=True)
    )


# -- the tests ------------------------------------------------------------------------------------


def test_two_guests_chat_through_wslab_serve(
    served_url: str, open_page: Callable[..., Page], unique_name: str
) -> None:
    alice, bob = open_page(served_url), open_page(served_url)
    alice_id = sign_in_as_guest(alice)
    bob_id = sign_in_as_guest(bob)
    assert alice_id != bob_id
    sees_in_presence(alice, bob_id)  # bob is in the lobby: he gets it live

    text = f"hello from alice {unique_name}"
    send(alice, text)

    # Alice's own line is confirmed by the hub's ack: stored, with its seq.
    mine = message(alice, text)
    expect(mine).to_have_attribute("data-state", "sent")
    expect(mine).to_have_attribute("data-seq", re.compile(r"^[1-9]\d*$"))
    expect(mine).to_have_count(1)  # the hub's echo and the ack make one line, not two

    theirs = message(bob, text)
    expect(theirs).to_have_count(1)
    expect(theirs).to_be_visible()
    expect(theirs).to_have_attribute("data-state", "received")
    expect(theirs.get_by_test_id("message-author")).to_have_text(alice_id)
    expect(theirs).to_have_attribute("data-message-id", mine.get_attribute("data-message-id"))


def test_user_text_is_rendered_as_text_never_as_html(
    auth_hub: Any, open_page: Callable[..., Page], unique_name: str
) -> None:
    # The name travels in the token and the content in the message: both are user data.
    evil_name = '<b>mallory</b><img src=x onerror="window.__pwned=3">'
    mallory, victim = open_page(auth_hub.url), open_page(auth_hub.url)
    sign_in_with_token(mallory, auth_hub.token("mallory", username=evil_name))
    sign_in_with_token(victim, auth_hub.token("victim", username="victim"))
    sees_in_presence(victim, "mallory")

    payload = f"{XSS} {unique_name}"
    send(mallory, payload)

    shown = message(victim, payload)
    expect(shown).to_have_count(1)
    expect(shown.get_by_test_id("message-content")).to_have_text(payload)
    expect(shown.get_by_test_id("message-author")).to_have_text(evil_name)
    expect(victim.locator('[data-testid=presence-user][data-user-id="mallory"]')).to_contain_text(
        evil_name
    )
    expect(message(mallory, payload)).to_have_attribute("data-state", "sent")
    for page in (victim, mallory):
        assert page.evaluate("window.__pwned") is None
        # No element was made from the text: the only images/scripts are none at all.
        assert page.locator("#app img, #app script, #app b").count() == 0


def test_reload_recovers_history(
    served_url: str, open_page: Callable[..., Page], unique_name: str
) -> None:
    page = open_page(served_url)
    sign_in_as_guest(page)
    texts = [f"before reload {n} {unique_name}" for n in range(3)]
    for text in texts:
        send(page, text)
        expect(message(page, text)).to_have_attribute("data-state", "sent")

    page.reload()
    # The tab remembers how it signed in, reconnects, and loads the lobby's last messages.
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
    for text in texts:
        expect(message(page, text)).to_have_count(1)
        expect(message(page, text)).to_be_visible()
    seqs = [int(message(page, text).get_attribute("data-seq") or 0) for text in texts]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3

    # Someone arriving later sees the same history (chat:history on join).
    late = open_page(served_url)
    sign_in_as_guest(late)
    for text in texts:
        expect(message(late, text)).to_have_count(1)


def test_direct_message_reaches_only_its_target(
    auth_hub: Any, open_page: Callable[..., Page], unique_name: str
) -> None:
    alice, bob, carol = (open_page(auth_hub.url) for _ in range(3))
    sign_in_with_token(alice, auth_hub.token("alice", username="Alice"))
    sign_in_with_token(bob, auth_hub.token("bob", username="Bob"))
    sign_in_with_token(carol, auth_hub.token("carol", username="Carol"))
    sees_in_presence(alice, "bob")

    # Alice picks Bob in the presence list and writes to him.
    alice.locator('[data-testid=presence-user][data-user-id="bob"]').click()
    expect(alice.get_by_test_id("conversation-title")).to_have_text("@Bob")
    secret = f"just for bob {unique_name}"
    send(alice, secret)
    expect(message(alice, secret)).to_have_attribute("data-state", "sent")

    # Bob gets a conversation with Alice, marked unread, and the message in it.
    conversation = bob.locator('[data-testid=dm-item][data-user-id="alice"]')
    expect(conversation).to_be_visible()
    conversation.click()
    expect(bob.get_by_test_id("conversation-title")).to_have_text("@Alice")
    expect(message(bob, secret)).to_be_visible()
    expect(message(bob, secret).get_by_test_id("message-author")).to_have_text("Alice")

    # A later lobby message reaches Carol; had the DM been misrouted it would have come first.
    alice.locator('[data-testid=room-item][data-room="lobby"]').click()
    public = f"for everyone {unique_name}"
    send(alice, public)
    expect(message(carol, public)).to_be_visible()
    expect(message(carol, secret)).to_have_count(0)
    expect(carol.get_by_test_id("dm-item")).to_have_count(0)
    assert secret not in (carol.content())


def test_phone_sized_screen_has_no_horizontal_overflow(
    guest_hub: Any, open_page: Callable[..., Page]
) -> None:
    page = open_page(guest_hub.url, viewport={"width": 360, "height": 640})
    sign_in_as_guest(page)
    send(page, "x" * 400)  # one long unbroken word must wrap, not widen the page
    send(page, "a short one")
    expect(message(page, "a short one")).to_have_attribute("data-state", "sent")

    for test_id in ("message-list", "message-input", "send-button", "connection-status"):
        expect(page.get_by_test_id(test_id)).to_be_in_viewport()
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 360, f"the page is {width}px wide on a 360px screen"

    # The room list is collapsed behind a button, and opens and closes from the keyboard.
    rooms = page.get_by_test_id("room-list")
    expect(rooms).to_be_hidden()
    toggle = page.get_by_test_id("sidebar-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(rooms).to_be_visible()
    expect(page.get_by_test_id("sidebar-close")).to_be_focused()
    page.keyboard.press("Escape")
    expect(rooms).to_be_hidden()
    expect(toggle).to_be_focused()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 360


def test_invalid_token_shows_the_4001_state(auth_hub: Any, open_page: Callable[..., Page]) -> None:
    jwt = pytest.importorskip("jwt")
    forged = jwt.encode(
        {"sub": "mallory", "exp": int(time.time()) + 600},
        "not-the-secret-of-this-hub-0123456789",
        algorithm="HS256",
    )
    page = open_page(auth_hub.url)
    expect(page.get_by_test_id("guest-login-button")).to_be_hidden()  # tokens are required here
    page.get_by_test_id("token-input").fill(forged)
    page.get_by_test_id("token-login-button").click()

    status = page.get_by_test_id("connection-status")
    expect(status).to_have_attribute("data-state", "closed")
    expect(status).to_contain_text("4001")
    expect(status).to_contain_text("authentication failed")
    expect(page.get_by_test_id("login-error")).to_contain_text("4001")
    expect(page.get_by_test_id("token-input")).to_be_visible()  # a chance to paste another one
    expect(page.get_by_test_id("reconnect-now")).to_be_hidden()  # no retrying a refused token


def test_reconnect_recovers_missed_messages_or_announces_the_gap(
    tmp_path: Path, open_page: Callable[..., Page], unique_name: str
) -> None:
    # The hub keeps 3 messages per room, so a long enough outage loses some for good.
    hub = Hub.start_in_thread(
        port=0,
        auth_required=False,
        database=f"sqlite:///{tmp_path}/chat.db",
        broker="memory://",
        history_retention=3,
    )
    try:
        sent_by_bob: list[dict[str, Any]] = []
        routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        offline = threading.Event()

        def through(ws: WebSocketRoute) -> None:
            """Bob's WebSocket goes through here: recorded, or refused while he is offline."""
            if offline.is_set():
                # Refused with the code the outage began with, so the status line reads
                # "last close 1011" whichever of the two closes the page saw last.
                ws.close(code=1011, reason="gone")
                return
            server = ws.connect_to_server()

            def to_server(data: str | bytes) -> None:
                if isinstance(data, str):
                    sent_by_bob.append(json.loads(data))
                server.send(data)

            ws.on_message(to_server)
            routes.append((ws, server))

        alice = open_page(hub.url)
        bob = open_page(hub.url, new_context=True)
        bob.route_web_socket(re.compile(r"/ws$"), through)
        sign_in_as_guest(alice)
        bob_id = sign_in_as_guest(bob)
        sees_in_presence(alice, bob_id)
        status = bob.get_by_test_id("connection-status")

        def outage(texts: list[str]) -> int:
            """Drop Bob's connection, send ``texts`` while he is away; returns his last seq."""
            last_seen = max(
                int(s)
                for s in bob.get_by_test_id("message").evaluate_all(
                    "lines => lines.map(line => line.dataset.seq || 0)"
                )
            )
            offline.set()
            page_side, hub_side = routes[-1]
            hub_side.close()  # the hub sees the connection end (presence leave)...
            page_side.close(code=1011, reason="gone")  # ...and so does the page
            expect(status).to_have_attribute("data-state", "reconnecting")
            expect(status).to_contain_text("reconnecting in")
            expect(status).to_contain_text("1011")
            expect(
                alice.locator(f'[data-testid=presence-user][data-user-id="{bob_id}"]')
            ).to_have_count(0)
            for text in texts:
                send(alice, text)
                expect(message(alice, text)).to_have_attribute("data-state", "sent")
            offline.clear()
            expect(status).to_have_attribute("data-state", "open")
            return last_seen

        def recovery_cursor() -> int | None:
            asks = [m for m in sent_by_bob if m.get("type") == "chat:history"]
            return asks[-1].get("since_seq") if asks else None

        first = f"seen live {unique_name}"
        send(alice, first)  # seq 1
        expect(message(bob, first)).to_be_visible()

        # A short outage: everything missed is still stored, and comes back once.
        missed = [f"missed {n} {unique_name}" for n in range(2)]  # seqs 2, 3
        last_seen = outage(missed)
        for text in [first, *missed]:
            expect(message(bob, text)).to_have_count(1)
        assert recovery_cursor() == last_seen == 1
        expect(bob.get_by_test_id("gap-notice")).to_have_count(0)

        # A longer one: seq 4 is deleted by retention before Bob is back. He is told so.
        lost, *kept = [f"later {n} {unique_name}" for n in range(4)]  # seqs 4..7
        last_seen = outage([lost, *kept])
        for text in kept:
            expect(message(bob, text)).to_have_count(1)
        gap = bob.get_by_test_id("gap-notice")
        expect(gap).to_have_count(1)
        expect(gap).to_contain_text("no longer available")
        assert recovery_cursor() == last_seen == 3
        expect(message(bob, lost)).to_have_count(0)
        # The notice sits where the messages are missing: after seq 3, before seq 5.
        order = bob.locator("[data-testid=message], [data-testid=gap-notice]").evaluate_all(
            "lines => lines.map(line => line.dataset.seq || 'gap')"
        )
        assert order == ["1", "2", "3", "gap", "5", "6", "7"]
    finally:
        hub.stop()


def test_a_message_is_pending_until_its_ack(
    guest_hub: Any, open_page: Callable[..., Page], unique_name: str
) -> None:
    held: list[str] = []
    hold = threading.Event()
    hold.set()
    routes: list[WebSocketRoute] = []

    def through(ws: WebSocketRoute) -> None:
        """Acks of chat messages are held back until the test lets them through."""
        server = ws.connect_to_server()

        def to_page(data: str | bytes) -> None:
            if isinstance(data, str) and hold.is_set():
                body = json.loads(data)
                if body.get("type") == "ack" and "message_id" in body:
                    held.append(data)
                    return
            ws.send(data)

        server.on_message(to_page)
        routes.append(ws)

    page = open_page(guest_hub.url, new_context=True)
    page.route_web_socket(re.compile(r"/ws$"), through)
    sign_in_as_guest(page)
    text = f"waiting for the ack {unique_name}"
    send(page, text)
    line = message(page, text)
    expect(line).to_have_attribute("data-state", "pending")
    expect(line.get_by_test_id("message-state")).to_have_text("sending…")
    expect(line).to_have_count(1)  # the hub's echo waits for the ack instead of a second line

    # Wait for the held ack while still holding: on a busy machine it may come late, and one
    # that arrived after the hold was lifted would reach the page directly.
    deadline = time.monotonic() + WAIT_MS / 1000
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    hold.clear()
    assert held, "the hub sent no ack"
    for data in held:
        routes[-1].send(data)
    expect(line).to_have_attribute("data-state", "sent")
    expect(line).to_have_count(1)
    expect(line).to_have_attribute("data-seq", re.compile(r"^[1-9]\d*$"))


def test_typing_indicator_and_presence_leave(
    auth_hub: Any, open_page: Callable[..., Page], unique_name: str
) -> None:
    alice, bob = open_page(auth_hub.url), open_page(auth_hub.url)
    sign_in_with_token(alice, auth_hub.token("alice", username="Alice"))
    sign_in_with_token(bob, auth_hub.token("bob", username="Bob"))
    sees_in_presence(bob, "alice")

    alice.get_by_test_id("message-input").press_sequentially("hel")
    typing = bob.get_by_test_id("typing-indicator")
    expect(typing).to_have_text("Alice is typing…")
    alice.get_by_test_id("message-input").press_sequentially("lo")
    alice.get_by_test_id("message-input").press("Enter")
    expect(message(bob, "hello")).to_be_visible()
    expect(typing).to_have_text("")

    # Rooms keep their messages apart.
    for page in (alice, bob):
        page.get_by_test_id("room-input").fill(unique_name)
        page.get_by_test_id("room-input").press("Enter")
        expect(page.get_by_test_id("conversation-title")).to_have_text(f"#{unique_name}")
    sees_in_presence(bob, "alice")
    send(alice, "in the new room")
    expect(message(bob, "in the new room")).to_be_visible()
    bob.locator('[data-testid=room-item][data-room="lobby"]').click()
    expect(message(bob, "in the new room")).to_be_hidden()
    expect(message(bob, "hello")).to_be_visible()

    # Bob leaves (his tab moves on): Alice's presence list drops him.
    bob.goto("about:blank")
    expect(alice.locator('[data-testid=presence-user][data-user-id="bob"]')).to_have_count(0)


def test_the_page_works_on_the_websockets_engine_too(
    tmp_path: Path, open_page: Callable[..., Page], unique_name: str
) -> None:
    hub = Hub.start_in_thread(
        port=0,
        auth_required=False,
        engine="websockets",
        database=f"sqlite:///{tmp_path}/chat.db",
        broker="memory://",
    )
    try:
        page = open_page(hub.url)
        sign_in_as_guest(page)
        text = f"over the reference engine {unique_name}"
        send(page, text)
        expect(message(page, text)).to_have_attribute("data-state", "sent")
        page.reload()
        expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "open")
        expect(message(page, text)).to_have_count(1)
    finally:
        hub.stop()


def test_earlier_history_pages_in_on_request(
    guest_hub: Any, open_page: Callable[..., Page]
) -> None:
    from wslab.integration.store import MessageDraft

    async def seed() -> None:
        for n in range(1, 61):
            draft = MessageDraft(
                room="lobby", from_user="old", from_username="Old", content=f"m{n}"
            )
            await guest_hub.hub.store.save(draft)

    guest_hub.call(seed())
    page = open_page(guest_hub.url)
    sign_in_as_guest(page)
    lines = page.get_by_test_id("message")
    expect(lines).to_have_count(50)  # the last 50 on arrival
    expect(message(page, "m11")).to_be_visible()
    expect(message(page, "m10")).to_have_count(0)

    older = page.get_by_test_id("load-older")
    older.click()
    expect(lines).to_have_count(60)
    expect(older).to_be_hidden()  # seq 1 is on the page: nothing earlier exists
    seqs = lines.evaluate_all("lines => lines.map(line => Number(line.dataset.seq))")
    assert seqs == list(range(1, 61))
    expect(page.get_by_test_id("gap-notice")).to_have_count(0)


@pytest.mark.parametrize("engine", ["wslab", "websockets"])
def test_chromium_negotiates_permessage_deflate_and_messages_arrive_intact(
    tmp_path: Path, open_page: Callable[..., Page], unique_name: str, engine: str
) -> None:
    hub = Hub.start_in_thread(
        port=0,
        auth_required=False,
        engine=engine,
        event_log_level="frames",
        database=f"sqlite:///{tmp_path}/chat.db",
        broker="memory://",
    )
    try:
        alice, bob = open_page(hub.url), open_page(hub.url)
        sign_in_as_guest(alice)
        bob_id = sign_in_as_guest(bob)
        sees_in_presence(alice, bob_id)
        # Long enough to be compressed (the threshold is 64 bytes), with text that is not ASCII.
        text = f"{unique_name} déjà vu, encore: " + "ça compresse très bien. " * 20
        send(alice, text)
        expect(message(alice, text)).to_have_attribute("data-state", "sent")
        expect(message(bob, text)).to_have_count(1)

        rows = hub.connections()
        assert len(rows) == 2
        # What Chromium offered and the hub accepted (the page's own JavaScript asks nothing).
        assert all(str(e).startswith("permessage-deflate") for e in rows["extensions"]), rows
        if engine == "wslab":  # only wslab's engine reports frames to the event log
            events = hub.events(kind="frame_in")
            compressed = events[events["rsv"] == 4]
            assert len(compressed) >= 1  # Chromium compressed Alice's message...
            biggest = compressed.loc[compressed["inflated"].idxmax()]
            assert biggest["inflated"] > len(text.encode()) > 4 * biggest["length"]  # ...a lot
    finally:
        hub.stop()
