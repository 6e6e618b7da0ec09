// Review console: live updates over a websocket, countdowns, confirm dialogs, one submit per form.
// Plain browser JavaScript, no build step.
(function () {
  "use strict";

  const body = document.body;
  const live = body.dataset.live;
  const meEl = document.querySelector(".topbar .username");
  const me = meEl ? meEl.textContent.trim() : "";
  const statusEl = document.getElementById("live-status");
  const announcer = document.getElementById("announcer");
  function announce(text) {
    if (!announcer) return;
    announcer.textContent = "";
    setTimeout(function () { announcer.textContent = text; }, 30);
  }

  // --- one submission per form: a double click acts once --------------------------------------
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form.matches("form[data-once]")) return;
    if (form.dataset.submitted) { event.preventDefault(); return; }
    form.dataset.submitted = "1";
    // Let the clicked button's name/value go with the form, then disable every button.
    setTimeout(function () {
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; b.setAttribute("aria-busy", "true"); });
    }, 0);
  });

  // --- confirmation dialogs ------------------------------------------------------------------
  // An opener is a link to the page with the dialog shown open (what happens without this script).
  function openDialog(dialog) {
    if (!dialog || !dialog.showModal) return;
    if (dialog.open) dialog.close();
    dialog.showModal();
  }
  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-confirm]");
    if (opener) {
      event.preventDefault();
      openDialog(document.getElementById(opener.dataset.confirm));
      return;
    }
    const closer = event.target.closest("dialog [data-close]");
    if (closer) { closer.closest("dialog").close(); }
  });
  document.querySelectorAll("dialog[data-reopen]").forEach(openDialog);

  // --- times in the reader's own zone, labelled with it ------------------------------------------
  const longFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  const shortFormat = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      const when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      el.textContent = (el.dataset.local === "short" ? shortFormat : longFormat).format(when);
    });
  }
  localTimes();

  // --- selection in the queue ----------------------------------------------------------------
  function updateSelection() {
    const boxes = document.querySelectorAll('input[name="order_ids"]');
    const checked = Array.from(boxes).filter(function (b) { return b.checked; }).length;
    const counter = document.getElementById("selection-count");
    const everything = document.getElementById("all-matching");
    if (everything && everything.checked && checked < boxes.length) everything.checked = false;
    if (counter) {
      counter.textContent = everything && everything.checked
        ? "All matching selected" : checked + " selected";
    }
    const none = checked === 0 && !(everything && everything.checked);
    document.querySelectorAll("[data-needs-selection]").forEach(function (b) {
      if (b.tagName === "SUMMARY") { b.setAttribute("aria-disabled", String(none)); } else { b.disabled = none; }
    });
    const all = document.getElementById("select-all");
    if (all) { all.checked = boxes.length > 0 && checked === boxes.length; }
  }
  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all" || event.target.id === "all-matching") {
      document.querySelectorAll('input[name="order_ids"]').forEach(function (b) { b.checked = event.target.checked; });
      if (event.target.id === "select-all" && !event.target.checked) {
        const everything = document.getElementById("all-matching");
        if (everything) everything.checked = false;
      }
    }
    if (event.target.name === "order_ids" || event.target.id === "select-all" || event.target.id === "all-matching") updateSelection();
  });
  document.addEventListener("click", function (event) {
    const summary = event.target.closest('summary[aria-disabled="true"]');
    if (summary) { event.preventDefault(); announce("Select orders first."); }
  });

  // --- countdowns to the approval timeout ----------------------------------------------------
  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      const left = Math.round((Date.parse(el.dataset.deadline) - now) / 1000);
      if (left <= 0) { el.textContent = "timed out"; el.className = "countdown expired"; return; }
      const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = (h > 0 ? h + "h " + String(m).padStart(2, "0") + "m"
        : (m > 0 ? m + "m " : "") + String(s).padStart(m > 0 ? 2 : 1, "0") + "s") + " left";
      // Amber only near the end: the last tenth of the review window, and at most its last hour.
      const windowSeconds = parseFloat(el.dataset.window) || 0;
      const soon = windowSeconds > 0 ? Math.min(windowSeconds * 0.1, 3600) : 60;
      el.className = "countdown" + (left < Math.min(soon, 60) ? " urgent" : left < soon ? " soon" : "");
    });
  }
  tick();
  setInterval(tick, 1000);

  // --- live refresh ----------------------------------------------------------------------------
  function partialUrl() {
    const url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    return url.toString();
  }

  let refreshing = false, again = false, timer = null;
  function scheduleRefresh() {
    if (timer) return;
    timer = setTimeout(function () { timer = null; refresh(); }, 120);
  }

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const response = await fetch(partialUrl(), { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" });
      if (response.ok) apply(await response.text());
    } catch (err) { /* the next change or reconnect retries */ }
    refreshing = false;
    if (again) { again = false; scheduleRefresh(); }
  }

  function apply(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    if (live === "queue") {
      const target = document.getElementById("queue-live");
      const checked = new Set(Array.from(document.querySelectorAll('input[name="order_ids"]:checked')).map(function (b) { return b.value; }));
      const before = new Set(Array.from(target.querySelectorAll("tr[data-order-id]")).map(function (r) { return r.dataset.orderId; }));
      // Keep the keyboard where it was: the same control of the same order, after the rows are redrawn.
      const focused = document.activeElement;
      const focusRow = target.contains(focused) && focused.closest("tr[data-order-id]");
      const focusKey = focusRow ? [focusRow.dataset.orderId, focused.className, focused.name || "", focused.value || ""] : null;
      target.innerHTML = doc.body.innerHTML;
      if (focusKey) {
        const row = target.querySelector('tr[data-order-id="' + CSS.escape(focusKey[0]) + '"]');
        const again = row && Array.from(row.querySelectorAll("a, button, input")).find(function (el) {
          return el.className === focusKey[1] && (el.name || "") === focusKey[2] && (el.value || "") === focusKey[3];
        });
        if (again) again.focus({ preventScroll: true });
        else if (row) { const link = row.querySelector(".order-link"); if (link) link.focus({ preventScroll: true }); }
      }
      target.querySelectorAll('input[name="order_ids"]').forEach(function (b) { b.checked = checked.has(b.value); });
      target.querySelectorAll("tr[data-order-id]").forEach(function (r) { if (!before.has(r.dataset.orderId)) r.classList.add("fresh"); });
      updateSelection();
      keepCurrentRow();
    } else {
      doc.querySelectorAll("[data-live-part]").forEach(function (part) {
        const current = document.querySelector('[data-live-part="' + part.dataset.livePart + '"]');
        if (!current) return;
        // Never pull a form from under a reviewer who is typing in it.
        if (current.contains(document.activeElement) && document.activeElement !== document.body) return;
        if (current.querySelector("details[open]")) return;
        current.replaceWith(part);
      });
    }
    localTimes();
    tick();
  }

  function setStatus(state, text) {
    if (!statusEl) return;
    statusEl.dataset.state = state;
    statusEl.textContent = text;
  }

  let delay = 500;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + "/ws/review/");
    socket.onopen = function () {
      delay = 500;
      setStatus("open", "Live");
      scheduleRefresh(); // catch up on anything missed while disconnected
    };
    socket.onmessage = function (event) {
      const change = JSON.parse(event.data);
      if (live === "queue" && "claimed_by" in change) {
        // Say who holds the claim at once; the refresh below brings the row's buttons.
        const row = document.querySelector('tr[data-order-id="' + CSS.escape(change.order_id) + '"]');
        const holder = row && row.querySelector(".claim-holder");
        if (holder && change.state === "AWAITING_APPROVAL") {
          holder.textContent = change.claimed_by ? (change.claimed_by === me ? "Claimed by you" : "Claimed by " + change.claimed_by) : "Unclaimed";
        }
      }
      if (live === "queue" || (live === "order" && change.order_id === body.dataset.orderId)) scheduleRefresh();
    };
    socket.onclose = function () {
      setStatus("closed", "Offline – reconnecting");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  if (live) { setStatus("connecting", "Connecting…"); connect(); }
  updateSelection();

  // --- after a bulk action, focus goes to its results ------------------------------------------
  const resultsTitle = document.getElementById("results-title");
  if (resultsTitle) resultsTitle.focus();

  // --- keyboard shortcuts ------------------------------------------------------------------------
  let currentId = null;
  function rows() { return Array.from(document.querySelectorAll("#queue-table tr[data-order-id]")); }
  function currentRow() {
    return rows().find(function (r) { return r.dataset.orderId === currentId; }) || null;
  }
  function keepCurrentRow() {
    rows().forEach(function (r) { r.classList.toggle("current", r.dataset.orderId === currentId); });
  }
  function moveTo(row, list) {
    if (!row) return;
    currentId = row.dataset.orderId;
    keepCurrentRow();
    const link = row.querySelector(".order-link");
    if (link) link.focus();
    const holder = row.querySelector(".claim-holder");
    announce("Order " + currentId + ", " + (list.indexOf(row) + 1) + " of " + list.length +
      (holder && holder.textContent.trim() ? ", " + holder.textContent.trim() : ""));
  }
  // A row reached with Tab or a click becomes the current one too.
  document.addEventListener("focusin", function (event) {
    const row = event.target.closest && event.target.closest("#queue-table tr[data-order-id]");
    if (row && row.dataset.orderId !== currentId) { currentId = row.dataset.orderId; keepCurrentRow(); }
  });
  function move(step) {
    const list = rows();
    if (!list.length) { announce("No orders in this list."); return; }
    const at = list.indexOf(currentRow());
    const next = at < 0 ? (step > 0 ? 0 : list.length - 1) : Math.max(0, Math.min(list.length - 1, at + step));
    moveTo(list[next], list);
  }
  function postTo(url, extra) {
    const token = document.querySelector('input[name="csrfmiddlewaretoken"]');
    if (!token) return;
    const form = document.createElement("form");
    form.method = "post";
    form.action = url;
    const fields = Object.assign({ csrfmiddlewaretoken: token.value, next: window.location.pathname + window.location.search }, extra || {});
    Object.keys(fields).forEach(function (name) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = name; input.value = fields[name];
      form.appendChild(input);
    });
    document.body.appendChild(form);
    form.submit();
  }
  function rowAction(kind) {
    const row = currentRow();
    if (!row) { announce("Move to an order first: j or k."); return; }
    const button = row.querySelector('[data-shortcut="' + kind + '"]');
    if (button) { announce((kind === "claim" ? "Claiming " : kind === "release" ? "Releasing " : "Approving ") + currentId); button.click(); return; }
    if (kind === "approve") {
      announce("Approving " + currentId);
      postTo("/review/orders/" + encodeURIComponent(currentId) + "/approve/", { nonce: Math.random().toString(16).slice(2) + Date.now() });
      return;
    }
    announce("That is not available for order " + currentId + ".");
  }
  const NOT_TYPING = ["checkbox", "radio", "button", "submit", "reset"];
  function typing(target) {
    if (!target.closest) return false;
    if (target.closest('textarea, select, [contenteditable=""], [contenteditable="true"]')) return true;
    return target.tagName === "INPUT" && NOT_TYPING.indexOf(target.type) < 0;
  }
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const help = document.getElementById("shortcuts-dialog");
    const openDialogEl = document.querySelector("dialog[open]");
    if (openDialogEl && openDialogEl !== help) return;
    const key = event.key;
    if (key === "?") { event.preventDefault(); if (help) { if (help.open) help.close(); else help.showModal(); } return; }
    if (openDialogEl) return;
    if (live === "order") {
      const target = key === "a" ? document.querySelector('[data-shortcut="approve"]')
        : key === "c" ? document.querySelector('[data-shortcut="claim"], [data-shortcut="release"]') : null;
      if (target) { event.preventDefault(); announce(target.textContent.trim()); target.click(); }
      else if (key === "a" || key === "c") announce("That is not available for this order.");
      return;
    }
    if (live !== "queue") return;
    if (key === "j" || key === "ArrowDown") { event.preventDefault(); move(1); }
    else if (key === "k" || key === "ArrowUp") { event.preventDefault(); move(-1); }
    else if (key === "x") {
      const row = currentRow();
      if (!row) { announce("Move to an order first: j or k."); return; }
      const box = row.querySelector('input[name="order_ids"]');
      box.checked = !box.checked;
      updateSelection();
      announce(currentId + (box.checked ? " selected" : " unselected"));
    }
    else if (key === "o" || (key === "Enter" && event.target === document.body)) {
      const row = currentRow();
      const link = row && row.querySelector(".order-link");
      if (link) { event.preventDefault(); window.location.href = link.href; }
    }
    else if (key === "a") { event.preventDefault(); rowAction("approve"); }
    else if (key === "c") {
      event.preventDefault();
      const row = currentRow();
      rowAction(row && row.querySelector('[data-shortcut="release"]') ? "release" : "claim");
    }
  });
})();
