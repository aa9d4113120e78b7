// The sandbox's phone page: chat as a patient through the test API (no build step, no framework).
// Polls the conversation, renders what WhatsApp would show, and turns taps into patient webhooks.
"use strict";

const $ = (id) => document.getElementById(id);
const me = { name: "", phone: "", userId: "" };
const rendered = new Map(); // wamid -> status element (outbound) or true (inbound)
const readSent = new Set();
let version = -1;
let pollTimer = null;
let openList = null; // {message, view} while the list dialog is open

function key() { return me.phone || me.userId; }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

async function api(method, path, body) {
  const reply = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await reply.json();
  if (!reply.ok) throw new Error(data.error || `HTTP ${reply.status}`);
  return data;
}

async function inject(spec) {
  const identity = { name: me.name };
  if (me.phone) identity.from = me.phone;
  if (me.userId) identity.user_id = me.userId;
  $("error").textContent = "";
  try {
    await api("POST", "/_sandbox/inject", { ...identity, ...spec });
    await poll();
  } catch (error) {
    $("error").textContent = `Not sent: ${error.message}`;
  }
}

function statusLabel(status) {
  return { accepted: "🕓 sending", sent: "✓ sent", delivered: "✓✓ delivered", read: "✓✓ read", failed: "⚠ not delivered" }[status] || status;
}

function mediaNode(view) {
  const src = view.id ? `/_sandbox/media/${encodeURIComponent(view.id)}` : view.link;
  const caption = view.caption ? el("p", { text: view.caption }) : null;
  if (view.media === "image" || view.media === "sticker") {
    return el("div", {}, el("img", { src, alt: view.caption || (view.media === "sticker" ? "Sticker" : "Image") }), caption);
  }
  if (view.media === "audio") return el("audio", { src, controls: "", "aria-label": "Audio message" });
  if (view.media === "video") return el("div", {}, el("video", { src, controls: "", "aria-label": "Video" }), caption);
  const name = view.filename || "document";
  return el("div", {}, el("span", { text: "Document: " }), el("a", { href: src, download: name, text: name }), caption);
}

function buttonsNode(message, buttons, onTap) {
  return el("div", { class: "actions", role: "group", "aria-label": "Replies" },
    ...buttons.map((button) => el("button", { type: "button", text: button.title || button.text, onclick: () => onTap(button) })));
}

function outboundBody(message) {
  const view = message.view || {};
  const parts = [];
  if (view.text !== undefined) parts.push(el("p", { text: view.text }));
  if (view.interactive) {
    if (view.header && view.header.type === "text") parts.push(el("p", { class: "header", text: view.header.text }));
    else if (view.header) parts.push(mediaNode({ ...view.header, media: view.header.type }));
    parts.push(el("p", { text: view.body }));
    if (view.footer) parts.push(el("p", { class: "footer", text: view.footer }));
    if (view.interactive === "button") {
      parts.push(buttonsNode(message, view.buttons, (button) =>
        inject({ type: "button_reply", id: button.id, title: button.title, context: message.id })));
    } else {
      parts.push(el("div", { class: "actions" }, el("button", {
        type: "button", "aria-haspopup": "dialog", onclick: () => showList(message, view),
      }, el("span", { "aria-hidden": "true", text: "☰ " }), view.list.button)));
    }
  }
  if (view.template) {
    if (view.header) parts.push(el("p", { class: "header", text: view.header }));
    parts.push(el("p", { text: view.body }));
    if (view.buttons && view.buttons.length) {
      parts.push(buttonsNode(message, view.buttons, (button) =>
        inject({ type: "button", payload: button.payload, text: button.text, context: message.id })));
    }
  }
  if (view.media) parts.push(mediaNode(view));
  if (view.emoji !== undefined) parts.push(el("p", { text: `Reacted ${view.emoji || "(removed)"}` }));
  if (view.latitude !== undefined) parts.push(el("p", { text: `📍 ${view.name || ""} ${view.latitude}, ${view.longitude}` }));
  if (!parts.length) parts.push(el("p", { text: `[${message.type}]` }));
  return parts;
}

function inboundBody(item) {
  const m = item.message;
  const body = m[m.type] || {};
  if (m.type === "text") return [el("p", { text: body.body })];
  if (m.type === "interactive") {
    const reply = body[body.type] || {};
    return [el("p", { text: reply.title })];
  }
  if (m.type === "button") return [el("p", { text: body.text })];
  if (["image", "document", "audio", "video", "sticker"].includes(m.type)) {
    return [mediaNode({ media: m.type, id: body.id, caption: body.caption, filename: body.filename })];
  }
  return [el("p", { text: `[${m.type}]` })];
}

function render(data) {
  const list = $("messages");
  for (const item of data.messages) {
    if (item.direction === "out") {
      if (!rendered.has(item.id)) {
        const status = el("small", { class: "meta", text: statusLabel(item.status) });
        list.append(el("li", { class: "bubble out", "data-wamid": item.id, "data-type": item.type }, ...outboundBody(item), status));
        rendered.set(item.id, status);
      } else {
        rendered.get(item.id).textContent = statusLabel(item.status);
      }
      if (!readSent.has(item.id) && item.status !== "failed" && document.visibilityState === "visible") {
        readSent.add(item.id);
        api("POST", `/_sandbox/messages/${encodeURIComponent(item.id)}/read`).catch(() => readSent.delete(item.id));
      }
    } else if (!rendered.has(item.id)) {
      list.append(el("li", { class: "bubble in", "data-wamid": item.id, "data-type": item.type }, ...inboundBody(item),
        el("small", { class: "meta", text: "you" })));
      rendered.set(item.id, true);
    }
  }
  $("typing").hidden = !data.typing;
}

async function poll() {
  if (!key()) return;
  try {
    const data = await api("GET", `/_sandbox/chat/${encodeURIComponent(key())}`);
    if (data.version !== version) {
      version = data.version;
      render(data);
    }
  } catch (error) {
    $("error").textContent = `Sandbox unreachable: ${error.message}`;
  }
}

function showList(message, view) {
  openList = { message, view };
  $("list-title").textContent = view.list.button;
  const holder = $("list-sections");
  holder.replaceChildren();
  view.list.sections.forEach((section, s) => {
    const fieldset = el("fieldset", {}, el("legend", { text: section.title || view.list.button }));
    section.rows.forEach((row, r) => {
      const id = `row-${s}-${r}`;
      fieldset.append(el("div", { class: "option" },
        el("input", { type: "radio", name: "row", id, value: row.id, required: "" }),
        el("label", { for: id }, el("span", { text: row.title }), row.description ? el("small", { text: row.description }) : null)));
    });
    holder.append(fieldset);
  });
  $("list-dialog").showModal();
  const first = holder.querySelector("input");
  if (first) first.focus();
}

$("list-dialog").addEventListener("close", () => {
  const dialog = $("list-dialog");
  const chosen = $("list-form").querySelector("input[name=row]:checked");
  if (dialog.returnValue === "send" && chosen && openList) {
    const rows = openList.view.list.sections.flatMap((section) => section.rows);
    const row = rows.find((r) => r.id === chosen.value);
    inject({ type: "list_reply", id: row.id, title: row.title, description: row.description || undefined, context: openList.message.id });
  }
  openList = null;
});

function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function sendFile(input, type) {
  const file = input.files[0];
  if (!file) return;
  const spec = { type, content_base64: await fileToBase64(file), mime_type: file.type || "application/octet-stream" };
  if (type === "document") spec.filename = file.name;
  if ($("caption").value) spec.caption = $("caption").value;
  await inject(spec);
  input.value = "";
  $("caption").value = "";
}

function start(name, phone, userId) {
  me.name = name.trim() || "Patient";
  me.phone = phone.replace(/\D/g, "");
  me.userId = userId.trim();
  if (!key()) { $("error").textContent = "Give a phone number or a user id."; return; }
  localStorage.setItem("sandbox-identity", JSON.stringify(me));
  rendered.clear(); readSent.clear(); version = -1;
  $("messages").replaceChildren();
  $("who").textContent = `${me.name} · ${me.phone ? "+" + me.phone : me.userId}`;
  $("chat").hidden = false; $("compose").hidden = false;
  clearInterval(pollTimer);
  pollTimer = setInterval(poll, 700);
  poll();
  $("text").focus();
}

$("identity").addEventListener("submit", (event) => {
  event.preventDefault();
  start($("name").value, $("phone").value, $("user-id").value);
});

$("compose").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  inject({ type: "text", text });
});
$("photo").addEventListener("change", () => sendFile($("photo"), "image"));
$("document").addEventListener("change", () => sendFile($("document"), "document"));
document.addEventListener("visibilitychange", () => { version = -1; poll(); });

(function restore() {
  const params = new URLSearchParams(location.search);
  const saved = JSON.parse(localStorage.getItem("sandbox-identity") || "null");
  const name = params.get("name") || (saved && saved.name);
  const phone = params.get("phone") || (saved && saved.phone);
  const userId = params.get("user_id") || (saved && saved.userId);
  if (name) $("name").value = name;
  if (phone !== null && phone !== undefined) $("phone").value = phone;
  if (userId) $("user-id").value = userId;
  if (params.get("phone") || params.get("user_id")) start($("name").value, $("phone").value, $("user-id").value);
})();
