// The demo chat page, on the TypeScript client (nova-client.js is clients/ts compiled).
// ?user=<name> picks the test user (default alice); tokens come from the dev-only /demo/token.
import { NovaClient, StorageCursorStore } from "./nova-client.js";

const params = new URLSearchParams(location.search);
const name = params.get("user") || "alice";
const $ = (id) => document.getElementById(id);

async function devToken(user) {
  const resp = await fetch(`/demo/token?user=${encodeURIComponent(user)}`, { method: "POST" });
  if (!resp.ok) throw new Error(`token: ${resp.status}`);
  return resp.json();
}

const me = await devToken(name);
$("me").textContent = name;
const api = (path, init = {}) =>
  fetch(path, { ...init, headers: { "content-type": "application/json", authorization: `Bearer ${me.token}` } })
    .then((r) => r.json());

const shown = new Set();
let open = null;

const client = new NovaClient({
  urls: [location.origin],
  clientId: localStorage.getItem(`nova-demo-client-${name}`) ?? (() => {
    const id = crypto.randomUUID();
    localStorage.setItem(`nova-demo-client-${name}`, id);
    return id;
  })(),
  token: async () => (await devToken(name)).token,
  store: new StorageCursorStore(sessionStorage, `nova-demo:${name}:`),
  onStatus: (s) => $("banner").classList.toggle("offline", s !== "online"),
  onMessage: (m) => {
    if (m.conversation_id !== open || shown.has(m.seq)) return;
    shown.add(m.seq);
    const li = document.createElement("li");
    li.className = m.sender_id === me.user_id ? "mine" : "";
    li.dataset.seq = String(m.seq);
    li.innerHTML = `<span class="seq">#${m.seq}</span>`;
    li.append(document.createTextNode(typeof m.body?.text === "string" ? m.body.text : JSON.stringify(m.body)));
    $("messages").append(li);
    li.scrollIntoView();
  },
});
window.novaDemo = { client };

function openConversation(id) {
  if (open === id) return;
  open = id;
  shown.clear();
  $("messages").replaceChildren();
  sessionStorage.setItem(`nova-demo:${name}:${id}`, "0"); // show the conversation from its start
  client.subscribe(id);
  for (const b of document.querySelectorAll(".conv")) b.classList.toggle("open", b.dataset.id === id);
}

async function refreshList() {
  const page = await api("/v1/conversations");
  const list = $("conversations");
  for (const c of page.conversations ?? []) {
    if (list.querySelector(`[data-id="${c.id}"]`)) continue;
    const b = document.createElement("button");
    b.className = "conv";
    b.dataset.id = c.id;
    b.textContent = c.title || c.id.slice(0, 8);
    b.onclick = () => openConversation(c.id);
    list.append(b);
    if (!open) openConversation(c.id);
  }
}

$("start").onclick = async () => {
  const peer = await devToken($("peer").value.trim());
  const c = await api("/v1/conversations", { method: "POST", body: JSON.stringify({ participants: [peer.user_id], title: `${name} & ${$("peer").value.trim()}` }) });
  await refreshList();
  openConversation(c.id);
};

// One send at a time: what a person types in order is stored (and shown to everyone) in that
// order; sends started side by side would take their seqs in whichever order they commit.
let sending = Promise.resolve();
$("compose").onsubmit = (ev) => {
  ev.preventDefault();
  const text = $("text").value;
  const conv = open;
  if (!text || !conv) return;
  $("text").value = "";
  sending = sending.then(() => client.send(conv, { text })).catch((err) => console.error("send failed", err));
};

client.start();
await refreshList();
setInterval(refreshList, 1000);
