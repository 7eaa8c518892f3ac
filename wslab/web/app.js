/*
 * wslab chat page: one WebSocket to the hub, speaking the protocol in docs/protocol.md.
 *
 * What it does, in the order a session lives:
 *   1. reads /config.json to learn whether guests are admitted and where the WebSocket is;
 *   2. connects; with a token, sends {"type":"auth","token":...} as the first message (a browser
 *      cannot set an Authorization header on a WebSocket);
 *   3. on "system:connected", joins its rooms (the hub has put it in "lobby" already) and asks for
 *      presence and history in each, and history of its direct conversations;
 *   4. shows messages, acks, typing, presence and errors as they come;
 *   5. when the connection drops (anything but 4001/4003 or a sign-out), reconnects after an
 *      exponential backoff with full jitter, then recovers: rejoins, and asks each conversation
 *      for "chat:history" since the last seq it saw. "complete: false" and "system:resync" are
 *      handled the same way, so a gap is either filled or announced, never silent.
 *
 * Safety rule: every string that came from the network or the user is put in the page with
 * textContent / createTextNode, never parsed as HTML. The page's Content-Security-Policy forbids
 * inline scripts and handlers as a second line of defence.
 *
 * Every collection here is bounded; each limit below says what happens when it is reached.
 */
"use strict";

(() => {
  // -- limits and timings --------------------------------------------------------------------------

  /** Messages kept per conversation; beyond it the oldest leave the page ("Show earlier" refetches). */
  const MAX_MESSAGES = 500;
  /** Messages waiting for an ack; beyond it the composer refuses to send until some are acked. */
  const MAX_PENDING = 100;
  /** Conversations: rooms joined and direct conversations; beyond it joining is refused. */
  const MAX_ROOMS = 10;
  const MAX_DMS = 10;
  /** Outstanding requests remembered by ref; beyond it the oldest are forgotten (their replies
   *  are then handled by content alone, or ignored). */
  const MAX_REQUESTS = 500;
  /** Own messages echoed by the hub before their ack; beyond it they are shown at once. */
  const MAX_DEFERRED = 200;
  /** Requests queued behind the client-side rate limit; beyond it the oldest typing hints and
   *  then the newest requests are dropped (with a notice). */
  const MAX_OUTBOX = 200;
  /** Notices on screen at once; the oldest goes first. */
  const MAX_TOASTS = 4;
  /** Known user names (for direct conversations); the oldest entry goes first. */
  const MAX_NAMES = 1000;

  const HISTORY_LIMIT = 50; // what a first visit to a conversation loads
  const RECOVERY_LIMIT = 100; // the hub's maximum page; recovery pages until a short page
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 10000;
  const TYPING_RESEND_MS = 3000; // at most one "is typing" per this interval while typing
  const TYPING_IDLE_MS = 4000; // no keystroke for this long: "stopped typing"
  const TYPING_SHOW_MS = 6000; // others' indicators fade if not refreshed (lost "false")
  const TOAST_MS = 8000;
  // Client-side pacing, below the hub's default limit (20/s, burst 40), so a reconnect that
  // restores many rooms at once is not answered with RATE_LIMITED.
  const SEND_RATE_PER_S = 15;
  const SEND_BURST = 30;

  const DEFAULT_ROOM = "lobby";
  const ROOM_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
  const MAX_CONTENT = 5000;
  const STORE_LOGIN = "wslab.login";
  const STORE_ROOMS = "wslab.rooms";
  const STORE_DMS = "wslab.dms."; // + user id: direct conversations belong to one identity
  const ERROR_DEGRADED = 9;

  // -- state ---------------------------------------------------------------------------------------

  const state = {
    config: { auth_required: true, ws_path: "/ws", protocol_version: "1.0" },
    login: null, // {mode: "guest"} | {mode: "token", token}
    ws: null,
    me: null, // {user_id, username}
    attempt: 0, // reconnect attempts since the last successful connection
    signedOut: false,
    reconnectTimer: 0,
    countdownTimer: 0,
    nextRef: 0,
    requests: new Map(), // ref -> {kind, key, ...}
    conversations: new Map(), // "#room" | "@user_id" -> conversation
    active: null, // key of the conversation on screen
    presence: new Map(), // room -> Map(user_id -> username)
    typing: new Map(), // room -> Map(user_id -> {username, timer})
    typingOut: { room: null, sentAt: 0, idleTimer: 0 },
    names: new Map(), // user_id -> username
    outbox: [],
    tokens: SEND_BURST,
    tokensAt: 0,
    outboxTimer: 0,
  };

  // -- small DOM helpers ---------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /**
   * Create an element. `props` sets attributes (and `text` sets textContent); children are nodes
   * or strings, and strings become text nodes — this is the only way text enters the page.
   */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function remember(map, key, value, limit) {
    map.delete(key);
    map.set(key, value);
    while (map.size > limit) map.delete(map.keys().next().value);
  }

  function storageGet(key) {
    try {
      const raw = sessionStorage.getItem(key);
      return raw === null ? null : JSON.parse(raw);
    } catch (_error) {
      return null; // storage disabled or a value from an older page: start fresh
    }
  }

  function storageSet(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, JSON.stringify(value));
    } catch (_error) {
      // Private mode or quota: the page still works, it just forgets on reload.
    }
  }

  // -- notices -------------------------------------------------------------------------------------

  /** Show a short, dismissable notice. kind: "error" | "info". */
  function toast(text, kind = "error") {
    const box = $("errors");
    const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
    const item = h(
      "div",
      { class: `toast toast-${kind}`, "data-testid": kind === "error" ? "error-item" : "notice-item" },
      h("span", { text }),
      close,
    );
    close.addEventListener("click", () => item.remove());
    box.append(item);
    while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
    setTimeout(() => item.remove(), TOAST_MS);
  }

  // -- connection state ----------------------------------------------------------------------------

  /** state: idle | connecting | open | reconnecting | closed; text says the details. */
  function setStatus(connState, text) {
    const status = $("status");
    status.dataset.state = connState;
    $("status-text").textContent = text;
    $("reconnect-now").hidden = connState !== "reconnecting";
    updateComposer();
  }

  function isOpen() {
    return state.ws !== null && state.ws.readyState === WebSocket.OPEN && state.me !== null;
  }

  function describeClose(code, reason) {
    return reason ? `${code} ${reason}` : `${code}`;
  }

  function wsUrl() {
    const url = new URL(state.config.ws_path || "/ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    state.signedOut = false;
    setStatus("connecting", state.attempt ? `connecting (attempt ${state.attempt + 1})…` : "connecting…");
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (error) {
      setStatus("closed", `closed: ${error.message}`);
      return;
    }
    state.ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== state.ws) return;
      if (state.login && state.login.mode === "token" && state.config.auth_required) {
        // The first message must be the token; anything else first is closed with 4001.
        ws.send(JSON.stringify({ type: "auth", token: state.login.token }));
      }
      setStatus("connecting", "signing in…");
    });
    ws.addEventListener("message", (event) => {
      if (ws !== state.ws || typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_error) {
        return; // not for us: the protocol only sends JSON objects
      }
      if (message && typeof message === "object" && typeof message.type === "string") {
        try {
          handle(message);
        } catch (error) {
          console.error("wslab: could not handle", message.type, error);
        }
      }
    });
    ws.addEventListener("close", (event) => {
      if (ws !== state.ws) return;
      state.ws = null;
      closed(event.code, event.reason);
    });
  }

  function closed(code, reason) {
    state.me = null;
    state.requests.clear();
    state.outbox.length = 0;
    for (const conv of state.conversations.values()) {
      flushDeferred(conv);
      for (const li of conv.pending.values()) markUnconfirmed(li);
      conv.pending.clear();
    }
    state.presence.clear();
    for (const room of state.typing.keys()) clearTyping(room);
    renderPresence();
    if (state.signedOut) return;
    if (code === 4001 || code === 4003) {
      // The hub refused who we are: reconnecting would be refused again.
      setStatus("closed", `closed: ${describeClose(code, reason || (code === 4001 ? "authentication failed" : "forbidden"))}`);
      if (code === 4001) {
        storageSet(STORE_LOGIN, null);
        showLogin(`The hub refused the sign-in (${describeClose(code, reason || "authentication failed")}).`);
      }
      return;
    }
    scheduleReconnect(code, reason);
  }

  function scheduleReconnect(code, reason) {
    // Full jitter: a random delay in [0, min(cap, base * 2^attempt)], so clients that lost the
    // hub together do not all come back in the same instant.
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(state.attempt, 16));
    const delay = Math.random() * ceiling;
    state.attempt += 1;
    const due = Date.now() + delay;
    const last = code ? ` (last close ${describeClose(code, reason)})` : "";
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setStatus("reconnecting", `reconnecting in ${seconds} s${last}`);
    };
    tick();
    state.countdownTimer = setInterval(tick, 250);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function signOut() {
    state.signedOut = true;
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    stopTyping();
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000, "signed out");
    closed(1000, "signed out");
    storageSet(STORE_LOGIN, null);
    state.login = null;
    for (const conv of state.conversations.values()) conv.list.remove();
    state.conversations.clear();
    state.active = null;
    state.attempt = 0;
    renderConversations();
    setStatus("idle", "signed out");
    showLogin("");
  }

  // -- sending -------------------------------------------------------------------------------------

  /** Send a request; with `meta` it gets a ref and its reply finds `meta` again. */
  function send(body, meta) {
    if (meta) {
      state.nextRef += 1;
      body.ref = `r${state.nextRef}`;
      remember(state.requests, body.ref, meta, MAX_REQUESTS);
    }
    if (state.outbox.length >= MAX_OUTBOX) {
      const typingAt = state.outbox.findIndex((queued) => queued.type === "chat:typing");
      if (typingAt >= 0) state.outbox.splice(typingAt, 1);
      else {
        toast("Too many requests queued; this one was dropped.");
        return body.ref;
      }
    }
    state.outbox.push(body);
    drainOutbox();
    return body.ref;
  }

  function drainOutbox() {
    clearTimeout(state.outboxTimer);
    const now = performance.now();
    state.tokens = Math.min(SEND_BURST, state.tokens + ((now - state.tokensAt) / 1000) * SEND_RATE_PER_S);
    state.tokensAt = now;
    while (state.outbox.length && state.tokens >= 1) {
      if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
      state.ws.send(JSON.stringify(state.outbox.shift()));
      state.tokens -= 1;
    }
    if (state.outbox.length) state.outboxTimer = setTimeout(drainOutbox, 1000 / SEND_RATE_PER_S);
  }

  // -- what the hub says ---------------------------------------------------------------------------

  function handle(message) {
    switch (message.type) {
      case "system:connected":
        return connected(message);
      case "ack":
        return acked(message);
      case "chat:message":
        return received(message, "live");
      case "chat:history":
        return history(message);
      case "chat:typing":
        return typingChanged(message);
      case "presence:snapshot":
        // The whole room when it is small; a large room's names come from presence:list.
        return message.complete ? presenceChanged(message) : undefined;
      case "presence:list":
      case "presence:join":
      case "presence:leave":
        return presenceChanged(message);
      case "system:resync":
        return resync(message);
      case "system:broadcast":
        return broadcast(message);
      case "auth:expiring":
        return expiring(message);
      case "auth:refreshed":
        $("refresh-form").hidden = true;
        return toast("Token refreshed.", "info");
      case "error":
        return failed(message);
      default:
        return undefined; // newer hubs may send more; unknown types are ignored
    }
  }

  function connected(message) {
    state.me = { user_id: String(message.user_id), username: String(message.username || message.user_id) };
    state.attempt = 0;
    clearInterval(state.countdownTimer);
    remember(state.names, state.me.user_id, state.me.username, MAX_NAMES);
    $("me-name").textContent = state.me.username;
    $("me").hidden = false;
    setStatus("open", "connected");
    restore();
  }

  /** After every (re)connect: rejoin rooms, reload presence, recover history since the last seq. */
  function restore() {
    // The rooms on the page (a reconnect), else those of this tab before a reload.
    let rooms = [...state.conversations.values()].filter((c) => c.kind === "room").map((c) => c.room);
    if (!rooms.length) rooms = storageGet(STORE_ROOMS);
    if (!Array.isArray(rooms)) rooms = [DEFAULT_ROOM];
    rooms = rooms.filter((room) => typeof room === "string" && ROOM_PATTERN.test(room)).slice(0, MAX_ROOMS);
    // Conversations of another identity (a guest gets a new id each visit) are not ours now.
    for (const conv of [...state.conversations.values()]) {
      if (conv.kind === "dm" && conv.owner !== state.me.user_id) dropConversation(conv.key);
    }
    const dms = storageGet(STORE_DMS + state.me.user_id);
    if (Array.isArray(dms)) {
      for (const dm of dms.slice(0, MAX_DMS)) {
        if (dm && typeof dm.user_id === "string") {
          remember(state.names, dm.user_id, String(dm.username || dm.user_id), MAX_NAMES);
          conversation(`@${dm.user_id}`);
        }
      }
    }
    if (!rooms.includes(DEFAULT_ROOM)) send({ type: "room:leave", room: DEFAULT_ROOM }, { kind: "leave" });
    for (const room of rooms) joinRoom(room);
    for (const conv of state.conversations.values()) {
      if (conv.kind === "dm") requestHistory(conv);
    }
    if (!state.active || !state.conversations.has(state.active)) {
      const first = state.conversations.keys().next();
      activate(first.done ? null : first.value);
    }
    renderConversations();
    renderPresence();
  }

  function joinRoom(room) {
    const conv = conversation(`#${room}`);
    send({ type: "room:join", room }, { kind: "join", key: conv.key });
    send({ type: "presence:list", room }, { kind: "presence", key: conv.key });
    requestHistory(conv);
    return conv;
  }

  function acked(message) {
    const request = state.requests.get(message.ref);
    if (!request) return;
    state.requests.delete(message.ref);
    if (request.kind === "message") confirm(request, message);
  }

  function failed(message) {
    const error = message.error && typeof message.error === "object" ? message.error : {};
    const text = String(error.message || error.name || "the hub reported an error");
    const request = message.ref !== undefined ? state.requests.get(message.ref) : undefined;
    if (request && request.kind === "message") {
      const conv = state.conversations.get(request.key);
      if (error.code === ERROR_DEGRADED && message.message_id) {
        // Delivered live but not stored yet: the ack follows (same ref) once it is stored.
        request.li.dataset.messageId = String(message.message_id);
        if (conv) conv.deferred.delete(String(message.message_id));
        setMessageState(request.li, "pending", "delivered, waiting to be stored…");
        return;
      }
      state.requests.delete(message.ref);
      if (conv) {
        conv.pending.delete(message.ref);
        flushDeferredIfSettled(conv);
      }
      setMessageState(request.li, "failed", `not sent: ${text}`);
      addRetry(request.li);
      return;
    }
    if (request) state.requests.delete(message.ref);
    if (request && request.kind === "join") {
      dropConversation(request.key);
      saveRooms();
      renderConversations();
    }
    toast(text);
  }

  // -- conversations -------------------------------------------------------------------------------

  /** The conversation for "#room" or "@user_id", created (hidden) if new. */
  function conversation(key) {
    let conv = state.conversations.get(key);
    if (conv) return conv;
    const isRoom = key.startsWith("#");
    conv = {
      key,
      kind: isRoom ? "room" : "dm",
      room: isRoom ? key.slice(1) : null,
      peer: isRoom ? null : key.slice(1),
      owner: state.me ? state.me.user_id : null,
      list: h("ol", { class: "conv-messages", "data-conversation": key, hidden: true }),
      byId: new Map(), // message_id -> li
      pending: new Map(), // ref -> li (waiting for the ack)
      deferred: new Map(), // message_id -> own message echoed before its ack
      lastSeq: 0,
      unread: 0,
      loaded: false,
    };
    state.conversations.set(key, conv);
    $("messages").append(conv.list);
    return conv;
  }

  function dropConversation(key) {
    const conv = state.conversations.get(key);
    if (!conv) return;
    conv.list.remove();
    state.conversations.delete(key);
    if (state.active === key) {
      const first = state.conversations.keys().next();
      activate(first.done ? null : first.value);
    }
  }

  function title(conv) {
    if (conv.kind === "room") return `#${conv.room}`;
    return `@${state.names.get(conv.peer) || conv.peer}`;
  }

  function saveRooms() {
    const rooms = [...state.conversations.values()].filter((c) => c.kind === "room").map((c) => c.room);
    storageSet(STORE_ROOMS, rooms);
    if (state.me) {
      const dms = [...state.conversations.values()]
        .filter((c) => c.kind === "dm")
        .map((c) => ({ user_id: c.peer, username: state.names.get(c.peer) || c.peer }));
      storageSet(STORE_DMS + state.me.user_id, dms);
    }
  }

  function activate(key) {
    if (state.active !== key) stopTyping();
    state.active = key;
    for (const conv of state.conversations.values()) conv.list.hidden = conv.key !== key;
    const conv = key ? state.conversations.get(key) : null;
    if (conv) conv.unread = 0;
    $("conversation-title").textContent = conv ? title(conv) : "No conversation";
    $("leave-room").textContent = conv && conv.kind === "dm" ? "Close conversation" : "Leave room";
    $("leave-room").hidden = !conv;
    $("message-label").textContent = conv ? `Message to ${title(conv)}` : "Message";
    $("message-input").placeholder = conv ? `Message ${title(conv)}` : "Join a room to chat";
    renderConversations();
    renderPresence();
    renderTyping();
    updateOlder();
    updateComposer();
    scrollToEnd(true);
  }

  function renderConversations() {
    const rooms = $("room-list");
    const dms = $("dm-list");
    rooms.replaceChildren();
    dms.replaceChildren();
    for (const conv of state.conversations.values()) {
      const current = conv.key === state.active;
      const button = h(
        "button",
        {
          type: "button",
          class: "conv-button",
          "data-testid": conv.kind === "room" ? "room-item" : "dm-item",
          "data-room": conv.room,
          "data-user-id": conv.peer,
          "aria-current": current ? "true" : null,
        },
        h("span", { class: "conv-name", text: title(conv) }),
        conv.unread
          ? h(
              "span",
              { class: "badge", "data-testid": "unread" },
              String(Math.min(conv.unread, 99)),
              h("span", { class: "visually-hidden" }, " unread"),
            )
          : null,
      );
      button.addEventListener("click", () => {
        activate(conv.key);
        closeSidebar();
        $("message-input").focus();
      });
      (conv.kind === "room" ? rooms : dms).append(h("li", {}, button));
    }
    $("dm-help").hidden = dms.children.length > 0;
  }

  function updateComposer() {
    const conv = state.active ? state.conversations.get(state.active) : null;
    $("send-button").disabled = !(conv && isOpen());
  }

  // -- messages ------------------------------------------------------------------------------------

  function conversationOf(message) {
    if (message.to_user !== null && message.to_user !== undefined) {
      if (!state.me) return null;
      const mine = String(message.from_user) === state.me.user_id;
      const peer = String(mine ? message.to_user : message.from_user);
      if (!mine) remember(state.names, peer, String(message.from_username || peer), MAX_NAMES);
      if (!state.conversations.has(`@${peer}`)) {
        if (state.conversations.size >= MAX_ROOMS + MAX_DMS) {
          toast(`A direct message from ${state.names.get(peer) || peer} is not shown: close a conversation first.`);
          return null;
        }
        const conv = conversation(`@${peer}`);
        conv.loaded = true; // it starts now; nothing older to fetch before this message
        saveRooms();
        renderConversations();
      }
      return state.conversations.get(`@${peer}`);
    }
    return state.conversations.get(`#${message.room}`) || null;
  }

  /** A chat:message from the hub. source: "live" | "history". */
  function received(message, source, conv = conversationOf(message)) {
    if (!conv) return; // a room we have left
    const id = message.message_id === undefined || message.message_id === null ? null : String(message.message_id);
    const seq = Number.isInteger(message.seq) ? message.seq : null;
    if (seq !== null) conv.lastSeq = Math.max(conv.lastSeq, seq);
    const known = id !== null ? conv.byId.get(id) : undefined;
    if (known) {
      if (seq !== null && !known.dataset.seq) place(conv, known, seq);
      return;
    }
    const mine = state.me !== null && String(message.from_user) === state.me.user_id;
    if (mine && id !== null) {
      // The hub echoes our own message (sent before the ack): let the ack claim it.
      if (source === "live" && conv.pending.size > 0 && conv.deferred.size < MAX_DEFERRED) {
        conv.deferred.set(id, message);
        return;
      }
      // After a reconnect: a message we could not confirm may turn out to be stored.
      const unconfirmed = [...conv.list.querySelectorAll('li[data-state="failed"][data-unconfirmed]')].find(
        (li) => li.dataset.content === String(message.content),
      );
      if (unconfirmed) {
        claim(conv, unconfirmed, id, seq);
        return;
      }
    }
    const li = renderMessage(message, mine ? "sent" : "received");
    if (id !== null) conv.byId.set(id, li);
    place(conv, li, seq);
    if (source === "live") {
      if (!mine && message.from_user !== undefined && conv.kind === "room") {
        stopShowingTyping(conv.room, String(message.from_user));
      }
      if (conv.key !== state.active && !mine) {
        conv.unread += 1;
        renderConversations();
      }
    }
    trim(conv);
    scrollToEnd(false);
  }

  function renderMessage(message, messageState) {
    const mine = state.me !== null && String(message.from_user) === state.me.user_id;
    const when = message.timestamp ? new Date(String(message.timestamp)) : new Date();
    const valid = !Number.isNaN(when.getTime());
    const li = h(
      "li",
      {
        class: mine ? "msg mine" : "msg",
        "data-testid": "message",
        "data-state": messageState,
        "data-from-user": message.from_user === undefined ? null : String(message.from_user),
      },
      h(
        "div",
        { class: "msg-meta" },
        h("span", { class: "msg-author", "data-testid": "message-author", text: String(message.from_username || message.from_user || "?") }),
        valid
          ? h("time", { datetime: when.toISOString(), title: when.toLocaleString() }, when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }))
          : null,
        h("span", { class: "msg-state", "data-testid": "message-state", text: stateLabel(messageState) }),
      ),
      h("p", { class: "msg-text", "data-testid": "message-content", text: String(message.content ?? "") }),
    );
    li.dataset.content = String(message.content ?? "");
    if (message.message_id) li.dataset.messageId = String(message.message_id);
    return li;
  }

  function stateLabel(messageState) {
    return { pending: "sending…", sent: "", received: "", failed: "not sent" }[messageState] ?? "";
  }

  function setMessageState(li, messageState, label) {
    li.dataset.state = messageState;
    const tag = li.querySelector(".msg-state");
    if (tag) tag.textContent = label === undefined ? stateLabel(messageState) : label;
    if (messageState !== "failed") delete li.dataset.unconfirmed;
    const retry = li.querySelector(".retry");
    if (retry && messageState !== "failed") retry.remove();
  }

  /**
   * Put `li` where it belongs. Every line has a sort key: a stored message its seq, a notice the
   * seq it follows plus 0.5, and a line without a seq yet (ours, pending) sorts last.
   */
  function place(conv, li, seq) {
    if (seq !== null && seq !== undefined) {
      li.dataset.seq = String(seq);
      li.dataset.key = String(seq);
    }
    const key = sortKey(li);
    let before = null;
    for (let node = conv.list.lastElementChild; node; node = node.previousElementSibling) {
      if (node === li) continue;
      if (sortKey(node) > key) before = node;
      else break;
    }
    if (before !== li.nextElementSibling || li.parentNode !== conv.list) conv.list.insertBefore(li, before);
  }

  function sortKey(node) {
    return node.dataset.key === undefined ? Infinity : Number(node.dataset.key);
  }

  /** The ack for one of ours: the pending line becomes the stored message. */
  function confirm(request, ack) {
    const conv = state.conversations.get(request.key);
    const li = request.li;
    if (!conv) return;
    conv.pending.delete(ack.ref);
    const id = ack.message_id === undefined || ack.message_id === null ? null : String(ack.message_id);
    const seq = Number.isInteger(ack.seq) ? ack.seq : null;
    if (id !== null) conv.deferred.delete(id);
    const other = id !== null ? conv.byId.get(id) : undefined;
    if (other && other !== li) {
      // Already on the page (e.g. from history after a reconnect): keep one copy.
      li.remove();
      setMessageState(other, "sent");
    } else {
      claim(conv, li, id, seq);
    }
    flushDeferredIfSettled(conv);
  }

  function claim(conv, li, id, seq) {
    if (id !== null) {
      li.dataset.messageId = id;
      conv.byId.set(id, li);
    }
    if (seq !== null) conv.lastSeq = Math.max(conv.lastSeq, seq);
    setMessageState(li, "sent");
    place(conv, li, seq);
  }

  function flushDeferredIfSettled(conv) {
    if (conv.pending.size === 0) flushDeferred(conv);
  }

  /** Echoes nobody claimed (e.g. our other tab's messages) are shown after all. */
  function flushDeferred(conv) {
    const echoes = [...conv.deferred.values()];
    conv.deferred.clear();
    for (const message of echoes) received(message, "history", conv);
  }

  function markUnconfirmed(li) {
    setMessageState(li, "failed", "not confirmed (connection lost)");
    li.dataset.unconfirmed = "1";
    addRetry(li);
  }

  function addRetry(li) {
    if (li.querySelector(".retry")) return;
    const retry = h("button", { type: "button", class: "retry link-button", "data-testid": "retry-button" }, "Send again");
    retry.addEventListener("click", () => {
      const key = li.closest("ol")?.dataset.conversation;
      const content = li.dataset.content;
      if (!key || !isOpen()) return;
      li.remove();
      sendMessage(state.conversations.get(key), content);
    });
    li.querySelector(".msg-meta").append(retry);
  }

  function trim(conv) {
    const items = conv.list.querySelectorAll('li[data-testid="message"]');
    for (let i = 0; i < items.length - MAX_MESSAGES; i += 1) {
      const li = items[i];
      if (li.dataset.messageId) conv.byId.delete(li.dataset.messageId);
      li.remove();
    }
    if (conv.key === state.active) updateOlder();
  }

  function sendMessage(conv, content) {
    if (!conv || !isOpen()) return false;
    if (conv.pending.size >= MAX_PENDING) {
      toast("Too many messages are waiting for the hub; try again in a moment.");
      return false;
    }
    const body = { type: "chat:message", content };
    if (conv.kind === "room") body.room = conv.room;
    else body.to_user = conv.peer;
    const li = renderMessage(
      { from_user: state.me.user_id, from_username: state.me.username, content, timestamp: new Date().toISOString() },
      "pending",
    );
    const ref = send(body, { kind: "message", key: conv.key, li });
    li.dataset.ref = ref;
    conv.pending.set(ref, li);
    place(conv, li, null);
    scrollToEnd(true);
    return true;
  }

  // -- history and recovery ------------------------------------------------------------------------

  function requestHistory(conv, reason = "recover") {
    const body = { type: "chat:history" };
    if (conv.kind === "room") body.room = conv.room;
    else body.with_user = conv.peer;
    if (conv.lastSeq > 0) {
      body.since_seq = conv.lastSeq;
      body.limit = RECOVERY_LIMIT;
    } else if (conv.loaded && conv.kind === "dm") {
      return; // a conversation that began while we watched has nothing older to recover
    } else {
      body.limit = HISTORY_LIMIT;
    }
    send(body, { kind: "history", key: conv.key, reason, limit: body.limit, since: body.since_seq });
  }

  function requestOlder(conv) {
    const first = conv.list.querySelector('li[data-testid="message"][data-seq]');
    const before = first ? Number(first.dataset.seq) : 0;
    if (!before || before <= 1) return;
    const body = { type: "chat:history", limit: HISTORY_LIMIT, before_seq: before };
    if (conv.kind === "room") body.room = conv.room;
    else body.with_user = conv.peer;
    send(body, { kind: "history", key: conv.key, reason: "older", limit: HISTORY_LIMIT, before });
  }

  function history(message) {
    const request = state.requests.get(message.ref);
    if (request) state.requests.delete(message.ref);
    let conv = request ? state.conversations.get(request.key) : state.conversations.get(`#${message.room}`);
    if (!conv) return;
    const messages = Array.isArray(message.messages) ? message.messages : [];
    const scroller = $("messages");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    for (const item of messages) {
      if (item && typeof item === "object") received(item, "history", conv);
    }
    conv.loaded = true;
    if (message.complete === false) gapNotice(conv, request, messages);
    if (request && request.reason === "older") {
      scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep the reader's place
    } else {
      scrollToEnd(true);
    }
    if (request && request.since !== undefined && messages.length >= request.limit) {
      requestHistory(conv, request.reason); // a long outage: keep paging forward
    }
    if (conv.key === state.active) updateOlder();
  }

  /** "complete: false": say where messages are missing instead of leaving a silent gap. */
  function gapNotice(conv, request, messages) {
    const firstSeq = messages.length && Number.isInteger(messages[0].seq) ? messages[0].seq : null;
    let after;
    if (request && request.since !== undefined) after = request.since; // missing right after it
    else if (firstSeq !== null) after = firstSeq - 1; // missing before the page
    else after = request && request.before ? request.before - 1 : conv.lastSeq;
    const note = h(
      "li",
      { class: "notice", "data-testid": "gap-notice", role: "note" },
      "Some messages are no longer available (the hub's retention removed them).",
    );
    note.dataset.key = String(after + 0.5);
    place(conv, note, null);
  }

  /** The hub asks clients to re-fetch since their last seq (e.g. its broker came back). */
  function resync(message) {
    const rooms = Array.isArray(message.rooms) ? message.rooms.map(String) : null;
    for (const conv of state.conversations.values()) {
      if (conv.kind === "dm" || rooms === null || rooms.includes(conv.room)) requestHistory(conv, "resync");
    }
  }

  function updateOlder() {
    const conv = state.active ? state.conversations.get(state.active) : null;
    const first = conv ? conv.list.querySelector('li[data-testid="message"][data-seq]') : null;
    $("load-older").hidden = !(first && Number(first.dataset.seq) > 1);
  }

  function broadcast(message) {
    const text = `Announcement from ${String(message.from_username || message.from_user || "the hub")}: ${String(message.content ?? "")}`;
    const conv = state.active ? state.conversations.get(state.active) : null;
    if (conv) {
      const note = h("li", { class: "notice announcement", "data-testid": "broadcast", role: "note" }, text);
      note.dataset.key = String(conv.lastSeq + 0.5);
      place(conv, note, null);
      scrollToEnd(false);
    } else {
      toast(text, "info");
    }
  }

  function scrollToEnd(force) {
    const scroller = $("messages");
    const nearEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
    if (force || nearEnd) scroller.scrollTop = scroller.scrollHeight;
  }

  // -- presence ------------------------------------------------------------------------------------

  function presenceChanged(message) {
    const room = String(message.room);
    if (message.type === "presence:list" || message.type === "presence:snapshot") {
      const users = new Map();
      for (const user of Array.isArray(message.users) ? message.users : []) {
        if (user && user.user_id !== undefined) {
          users.set(String(user.user_id), String(user.username || user.user_id));
        }
      }
      state.presence.set(room, users);
      state.requests.delete(message.ref);
    } else {
      if (!state.presence.has(room)) state.presence.set(room, new Map());
      const users = state.presence.get(room);
      const id = String(message.user_id);
      if (message.type === "presence:join") users.set(id, String(message.username || id));
      else {
        users.delete(id);
        stopShowingTyping(room, id);
      }
    }
    for (const [id, name] of state.presence.get(room) || []) remember(state.names, id, name, MAX_NAMES);
    const conv = state.active ? state.conversations.get(state.active) : null;
    if (conv && conv.room === room) renderPresence();
  }

  function renderPresence() {
    const list = $("presence-list");
    list.replaceChildren();
    const conv = state.active ? state.conversations.get(state.active) : null;
    if (!conv) return;
    let users;
    if (conv.kind === "room") {
      users = [...(state.presence.get(conv.room) || new Map())];
      $("people-title").textContent = `People in #${conv.room}`;
    } else {
      users = state.me ? [[conv.peer, state.names.get(conv.peer) || conv.peer], [state.me.user_id, state.me.username]] : [];
      $("people-title").textContent = "In this conversation";
    }
    users.sort((a, b) => a[1].localeCompare(b[1]));
    for (const [id, name] of users) {
      const me = state.me !== null && id === state.me.user_id;
      if (me || conv.kind === "dm") {
        list.append(h("li", { "data-testid": "presence-user", "data-user-id": id, class: "person" }, me ? `${name} (you)` : name));
        continue;
      }
      const button = h(
        "button",
        { type: "button", class: "person-button", "data-testid": "presence-user", "data-user-id": id, title: `Send ${name} a direct message` },
        h("span", { text: name }),
        h("span", { class: "visually-hidden" }, " — send a direct message"),
      );
      button.addEventListener("click", () => openDirect(id, name));
      list.append(h("li", { class: "person" }, button));
    }
  }

  function openDirect(userId, username) {
    const key = `@${userId}`;
    if (!state.conversations.has(key)) {
      if ([...state.conversations.values()].filter((c) => c.kind === "dm").length >= MAX_DMS) {
        toast(`At most ${MAX_DMS} direct conversations; close one first.`);
        return;
      }
      remember(state.names, userId, username, MAX_NAMES);
      const conv = conversation(key);
      saveRooms();
      if (isOpen()) requestHistory(conv, "initial");
    }
    activate(key);
    closeSidebar();
    $("message-input").focus();
  }

  // -- typing --------------------------------------------------------------------------------------

  function typingChanged(message) {
    const room = String(message.room);
    const id = String(message.user_id);
    if (state.me && id === state.me.user_id) return; // our own other tabs
    if (message.is_typing) {
      if (!state.typing.has(room)) state.typing.set(room, new Map());
      const users = state.typing.get(room);
      const previous = users.get(id);
      if (previous) clearTimeout(previous.timer);
      const timer = setTimeout(() => stopShowingTyping(room, id), TYPING_SHOW_MS);
      remember(users, id, { username: String(message.username || id), timer }, 50);
    } else {
      stopShowingTyping(room, id);
    }
    renderTyping();
  }

  function stopShowingTyping(room, id) {
    const users = state.typing.get(room);
    const entry = users && users.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    users.delete(id);
    renderTyping();
  }

  function clearTyping(room) {
    for (const entry of (state.typing.get(room) || new Map()).values()) clearTimeout(entry.timer);
    state.typing.delete(room);
    renderTyping();
  }

  function renderTyping() {
    const conv = state.active ? state.conversations.get(state.active) : null;
    const users = conv && conv.kind === "room" ? [...(state.typing.get(conv.room) || new Map()).values()] : [];
    const names = users.map((user) => user.username);
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = "Several people are typing…";
    $("typing").textContent = text;
  }

  /** Called on each keystroke: "typing" at most every TYPING_RESEND_MS, "stopped" when idle. */
  function noteTyping() {
    const conv = state.active ? state.conversations.get(state.active) : null;
    if (!conv || conv.kind !== "room" || !isOpen()) return;
    if ($("message-input").value.length === 0) {
      stopTyping();
      return;
    }
    const out = state.typingOut;
    const now = Date.now();
    if (out.room !== conv.room || now - out.sentAt >= TYPING_RESEND_MS) {
      if (out.room && out.room !== conv.room) stopTyping();
      send({ type: "chat:typing", room: conv.room, is_typing: true });
      out.room = conv.room;
      out.sentAt = now;
    }
    clearTimeout(out.idleTimer);
    out.idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    const out = state.typingOut;
    clearTimeout(out.idleTimer);
    if (out.room && isOpen() && state.conversations.has(`#${out.room}`)) {
      send({ type: "chat:typing", room: out.room, is_typing: false });
    }
    out.room = null;
    out.sentAt = 0;
  }

  // -- token expiry --------------------------------------------------------------------------------

  function expiring(message) {
    const seconds = Math.max(0, Math.round(Number(message.expires_in) || 0));
    if (state.login && state.login.mode === "token") {
      $("refresh-form").hidden = false;
      toast(`Your token expires in ${seconds} s: paste a new one to stay connected.`, "info");
    }
  }

  // -- the page's own controls ---------------------------------------------------------------------

  function showLogin(errorText) {
    $("login").hidden = false;
    $("app").hidden = true;
    $("me").hidden = true;
    $("logout").hidden = true;
    $("refresh-form").hidden = true;
    $("guest-box").hidden = !!state.config.auth_required;
    $("token-form").hidden = !state.config.auth_required;
    const error = $("login-error");
    error.textContent = errorText || "";
    error.hidden = !errorText;
  }

  function start(login) {
    state.login = login;
    storageSet(STORE_LOGIN, login);
    $("login").hidden = true;
    $("login-error").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    state.attempt = 0;
    connect();
  }

  /** The drawer of small screens (on wide screens the sidebar is always shown). */
  function openSidebar(open) {
    const wasOpen = document.body.classList.contains("sidebar-open");
    document.body.classList.toggle("sidebar-open", open);
    $("sidebar-toggle").setAttribute("aria-expanded", open ? "true" : "false");
    if (open && !wasOpen) $("sidebar-close").focus();
  }

  function closeSidebar() {
    const wasOpen = document.body.classList.contains("sidebar-open");
    openSidebar(false);
    // Focus must not stay inside a drawer that is no longer visible.
    if (wasOpen && $("sidebar").contains(document.activeElement)) $("sidebar-toggle").focus();
  }

  function wire() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) {
        showLogin("Paste a token first.");
        $("token-input").focus();
        return;
      }
      $("token-input").value = "";
      start({ mode: "token", token });
    });
    $("guest-login").addEventListener("click", () => start({ mode: "guest" }));
    $("logout").addEventListener("click", signOut);
    $("reconnect-now").addEventListener("click", () => {
      state.attempt = 0;
      connect();
    });
    $("sidebar-toggle").addEventListener("click", () => {
      openSidebar(!document.body.classList.contains("sidebar-open"));
    });
    $("sidebar-close").addEventListener("click", closeSidebar);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && document.body.classList.contains("sidebar-open")) closeSidebar();
    });

    $("join-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("room-input");
      const room = input.value.trim();
      if (!ROOM_PATTERN.test(room)) {
        toast("Room names are 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit.");
        input.focus();
        return;
      }
      input.value = "";
      const key = `#${room}`;
      if (!state.conversations.has(key)) {
        const roomCount = [...state.conversations.values()].filter((c) => c.kind === "room").length;
        if (roomCount >= MAX_ROOMS) {
          toast(`At most ${MAX_ROOMS} rooms at once; leave one first.`);
          return;
        }
        if (isOpen()) joinRoom(room);
        else conversation(key); // joined on (re)connect
        saveRooms();
      }
      activate(key);
      closeSidebar();
      $("message-input").focus();
    });

    $("leave-room").addEventListener("click", () => {
      const conv = state.active ? state.conversations.get(state.active) : null;
      if (!conv) return;
      if (conv.kind === "room") {
        stopTyping();
        if (isOpen()) send({ type: "room:leave", room: conv.room }, { kind: "leave", key: conv.key });
        state.presence.delete(conv.room);
        clearTyping(conv.room);
      }
      dropConversation(conv.key);
      saveRooms();
      renderConversations();
    });

    $("load-older").addEventListener("click", () => {
      const conv = state.active ? state.conversations.get(state.active) : null;
      if (conv && isOpen()) requestOlder(conv);
    });

    const input = $("message-input");
    const submit = () => {
      const content = input.value;
      if (!content.trim()) return;
      if (content.length > MAX_CONTENT) {
        toast(`A message can be at most ${MAX_CONTENT} characters.`);
        return;
      }
      const conv = state.active ? state.conversations.get(state.active) : null;
      if (!conv) return;
      stopTyping();
      if (sendMessage(conv, content)) {
        input.value = "";
        autosize();
      }
    };
    const autosize = () => {
      input.style.height = "auto";
      input.style.height = `${input.scrollHeight}px`;
    };
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
      input.focus();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (!$("send-button").disabled) submit();
      }
    });
    input.addEventListener("input", () => {
      autosize();
      noteTyping();
    });
    input.addEventListener("blur", stopTyping);

    $("refresh-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("refresh-input").value.trim();
      if (!token || !isOpen()) return;
      $("refresh-input").value = "";
      state.login = { mode: "token", token };
      storageSet(STORE_LOGIN, state.login);
      send({ type: "auth:refresh", token }, { kind: "refresh" });
    });

    window.addEventListener("online", () => {
      if (state.login && !state.ws && !state.signedOut) {
        state.attempt = 0;
        connect();
      }
    });
  }

  async function loadConfig() {
    try {
      const response = await fetch("/config.json", { cache: "no-store" });
      if (response.ok) {
        const config = await response.json();
        if (config && typeof config === "object") Object.assign(state.config, config);
      }
    } catch (_error) {
      // Keep the defaults: tokens required, the WebSocket at /ws.
    }
  }

  async function init() {
    wire();
    await loadConfig();
    const saved = storageGet(STORE_LOGIN);
    const usable =
      saved &&
      ((saved.mode === "token" && typeof saved.token === "string" && saved.token) ||
        (saved.mode === "guest" && !state.config.auth_required));
    if (usable) start(saved);
    else showLogin("");
    document.body.dataset.ready = "true";
  }

  init();
})();
