// Review console: live updates over a websocket, countdowns, confirm dialogs, one submit per form.
// Plain browser JavaScript, no build step.
(function () {
  "use strict";

  const body = document.body;
  const live = body.dataset.live;
  const statusEl = document.getElementById("live-status");

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
  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-confirm]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.confirm);
      if (dialog && dialog.showModal) { dialog.showModal(); }
      return;
    }
    const closer = event.target.closest("dialog [data-close]");
    if (closer) { closer.closest("dialog").close(); }
  });

  // --- selection in the queue ----------------------------------------------------------------
  function updateSelection() {
    const boxes = document.querySelectorAll('input[name="order_ids"]');
    const checked = Array.from(boxes).filter(function (b) { return b.checked; }).length;
    const counter = document.getElementById("selection-count");
    if (counter) counter.textContent = checked + " selected";
    document.querySelectorAll("[data-needs-selection]").forEach(function (b) { b.disabled = checked === 0; });
    const all = document.getElementById("select-all");
    if (all) { all.checked = boxes.length > 0 && checked === boxes.length; }
  }
  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all") {
      document.querySelectorAll('input[name="order_ids"]').forEach(function (b) { b.checked = event.target.checked; });
    }
    if (event.target.name === "order_ids" || event.target.id === "select-all") updateSelection();
  });

  // --- countdowns to the approval timeout ----------------------------------------------------
  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      const left = Math.round((Date.parse(el.dataset.deadline) - now) / 1000);
      if (left <= 0) { el.textContent = "timed out"; el.className = "countdown expired"; return; }
      const m = Math.floor(left / 60), s = left % 60;
      el.textContent = (m > 0 ? m + "m " : "") + String(s).padStart(m > 0 ? 2 : 1, "0") + "s left";
      el.className = "countdown" + (left < 60 ? " urgent" : "");
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
      target.innerHTML = doc.body.innerHTML;
      target.querySelectorAll('input[name="order_ids"]').forEach(function (b) { b.checked = checked.has(b.value); });
      target.querySelectorAll("tr[data-order-id]").forEach(function (r) { if (!before.has(r.dataset.orderId)) r.classList.add("fresh"); });
      updateSelection();
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
      if (live === "queue" || (live === "order" && change.order_id === body.dataset.orderId)) scheduleRefresh();
    };
    socket.onclose = function () {
      setStatus("closed", "Offline – reconnecting");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  if (live) connect();
  updateSelection();
})();
