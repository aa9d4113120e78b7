// Live updates for the nurse inbox: poll small JSON endpoints, change the page with DOM calls only
// (never innerHTML: message text is patient input).
(function () {
  "use strict";
  var POLL_MS = 1500;
  var body = document.body;
  if (body.dataset.signedIn !== "yes") { return; }
  var baseTitle = document.title.replace(/^\(\d+\)\s*/, "");
  var seen = null;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function getJSON(url) {
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (r.status === 401) { window.location = "/login"; } return r.json(); });
  }

  function beep() {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      var ctx = new Ctx(), osc = ctx.createOscillator();
      osc.frequency.value = 880; osc.connect(ctx.destination); osc.start(); osc.stop(ctx.currentTime + 0.15);
    } catch (e) { /* no sound allowed yet: the badge and title still change */ }
  }

  function csrf() { var c = document.getElementById("csrf"); return c ? c.value : ""; }

  function queueRow(t) {
    var tr = el("tr", {"data-ticket": t.id, "class": t.priority + (t.sla_breached ? " breached" : "")});
    tr.appendChild(el("td", {}, t.priority));
    var who = el("td"); who.appendChild(el("a", {href: t.url}, t.name)); tr.appendChild(who);
    tr.appendChild(el("td", {}, t.reason));
    var waiting = el("td", {}, t.waiting);
    if (t.sla_breached) { waiting.appendChild(document.createTextNode(" ")); waiting.appendChild(el("strong", {}, "(over SLA)")); }
    tr.appendChild(waiting);
    tr.appendChild(el("td", {"class": t.window_open ? "open" : "closed"}, t.window));
    tr.appendChild(el("td", {}, t.claimed_by || "—"));
    var action = el("td");
    if (t.status === "waiting") {
      var form = el("form", {method: "post", action: "/tickets/" + t.id + "/claim", "class": "inline"});
      form.appendChild(el("input", {type: "hidden", name: "csrf_token", value: csrf()}));
      form.appendChild(el("button", {type: "submit", "aria-label": "Claim conversation with " + t.name}, "Claim"));
      action.appendChild(form);
    } else { action.appendChild(el("a", {href: t.url}, "Open")); }
    tr.appendChild(action);
    return tr;
  }

  function onQueue(data) {
    var badge = document.getElementById("badge");
    badge.textContent = data.waiting ? String(data.waiting) : "";
    badge.classList.toggle("urgent", data.urgent > 0);
    document.title = (data.waiting ? "(" + data.waiting + ") " : "") + baseTitle;
    var ids = data.tickets.filter(function (t) { return t.status === "waiting"; }).map(function (t) { return t.id; });
    if (seen !== null) {
      var fresh = data.tickets.filter(function (t) { return t.status === "waiting" && seen.indexOf(t.id) < 0; });
      if (fresh.length) {
        var urgent = fresh.some(function (t) { return t.priority === "urgent"; });
        document.getElementById("announce").textContent =
          fresh.length + (urgent ? " new urgent" : " new") + " conversation(s) waiting";
        beep();
      }
    }
    seen = ids;
    var table = document.getElementById("queue");
    if (!table) { return; }
    var tbody = table.tBodies[0];
    var focused = document.activeElement && tbody.contains(document.activeElement);
    if (focused) { return; }  // never pull a control away from someone using the keyboard
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    data.tickets.forEach(function (t) { tbody.appendChild(queueRow(t)); });
    document.getElementById("empty").hidden = data.tickets.length > 0;
  }

  function entryItem(e) {
    var li = el("li", {"data-key": e.key, "class": e.direction});
    li.appendChild(el("span", {"class": "meta"}, e.who + " · " + e.at));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", {"class": "text"}, e.text));
    if (e.media_url) {
      li.appendChild(el("a", {"class": "media", href: e.media_url, target: "_blank", rel: "noopener"},
                        "open attachment (" + e.media + ")"));
    } else if (e.media) { li.appendChild(el("span", {"class": "media"}, "[" + e.media + "]")); }
    if (e.status) { li.appendChild(el("span", {"class": "status status-" + e.status})); }
    setStatus(li, e);
    return li;
  }

  function setStatus(li, e) {
    var status = li.querySelector(".status");
    if (!status) { return; }
    status.className = "status status-" + e.status;
    status.textContent = e.status_label + (e.error ? " (" + e.error + ")" : "");
  }

  function onConversation(data) {
    var list = document.getElementById("transcript");
    var known = {};
    Array.prototype.forEach.call(list.children, function (li) { known[li.dataset.key] = li; });
    data.entries.forEach(function (e) {
      if (known[e.key]) { setStatus(known[e.key], e); } else { list.appendChild(entryItem(e)); }
    });
    document.getElementById("window").textContent = data.window;
    var closed = document.getElementById("window-closed");
    if (closed) { closed.hidden = data.window_open; }
    var send = document.getElementById("send");
    if (send) { send.textContent = data.window_open ? "Send reply" : "Send template and queue reply"; }
    var status = document.getElementById("ticket-status");
    status.textContent = data.ticket.status + (data.ticket.claimed_by ? " by " + data.ticket.claimed_by : "");
  }

  function tick() {
    var jobs = [getJSON("/api/queue").then(onQueue)];
    var conversation = document.getElementById("conversation");
    if (conversation) { jobs.push(getJSON("/api/tickets/" + conversation.dataset.ticket).then(onConversation)); }
    Promise.all(jobs).catch(function () { /* offline for a moment: try again next tick */ })
      .then(function () { window.setTimeout(tick, POLL_MS); });
  }

  var insert = document.getElementById("insert-canned");
  if (insert) {
    insert.addEventListener("click", function () {
      var text = document.getElementById("canned").value, area = document.getElementById("reply-text");
      if (text) { area.value = area.value ? area.value + "\n" + text : text; area.focus(); }
    });
  }
  tick();
}());
