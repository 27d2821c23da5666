"""The dashboard's one page: plain HTML, CSS and JavaScript in one string (no build step, nothing
fetched from elsewhere). It opens ``/events`` (server-sent events, one JSON message per
snapshot: ``{"state": Snapshot.to_json(), "events": [{seq, ts_ms, kind, text}]}``) and
re-renders; kill -9 / restart / pause / resume / cut ZK / heal ZK buttons POST
``/api/brokers/<id>/<action>`` (with ``{"confirm": true}`` after the browser's confirm()
dialog, except resume and heal), the
preferred-election button ``/api/elect-preferred`` (confirmed) and the produce form
``/api/produce``. The znode tree (``state.znodes``) is drawn indented, ephemeral znodes
badged with their owner session, and a znode created or changed since the previous snapshot
highlighted for 3 s (its data version, child version or mtime moved)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kafkalike dashboard</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin: 0 0 .2em; } h2 { font-size: 1.05em; margin: 1em 0 .3em; }
#status { color: #555; margin-bottom: .5em; } .bad { color: #b00; font-weight: 600; } .good { color: #080; }
.grid { display: grid; grid-template-columns: minmax(32em, 1fr) minmax(28em, 1fr); gap: 0 2em; }
table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
th { background: #eee; } tr.down td { color: #999; } tr.controller td:first-child { font-weight: 700; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: .85em; background: #ddd; margin-left: 4px; }
.badge.ctl { background: #ffd54f; } .badge.leader { background: #90caf9; } .badge.dead { background: #ef9a9a; }
tr.changed td { animation: flash 3s; } @keyframes flash { from { background: #fff59d; } to { background: #fff; } }
#timeline { list-style: none; padding: 0; margin: 0; max-height: 40em; overflow-y: auto; font-family: ui-monospace, monospace; font-size: 12.5px; }
#timeline li { padding: 2px 4px; border-bottom: 1px solid #eee; } #timeline .ts { color: #777; margin-right: .6em; }
.k-broker { color: #6a1b9a; } .k-controller { color: #e65100; } .k-partition { color: #1565c0; }
.k-action { color: #000; font-weight: 700; } .k-process { color: #b71c1c; } .k-zk { color: #2e7d32; } .k-error { color: #b00; }
.k-statechange { color: #00695c; }
#znodes-box { max-height: 28em; overflow-y: auto; } #znodes td { font-family: ui-monospace, monospace; font-size: 12px; }
#znodes td.data { max-width: 32em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; color: #555; }
.badge.eph { background: #ce93d8; } #timeline.hide-steps .k-statechange { display: none; }
button { font-size: .85em; margin: 0 2px; } #errors { color: #b00; font-size: .85em; }
</style></head>
<body>
<h1>kafkalike dashboard</h1>
<div id="status">connecting&hellip;</div>
<div class="grid">
<div>
<h2>ZooKeeper ensemble</h2>
<table id="zk"><thead><tr><th>node</th><th>state</th><th>zxid</th></tr></thead><tbody></tbody></table>
<h2>Brokers</h2>
<table id="brokers"><thead><tr><th>broker</th><th>address</th><th>process</th><th>/brokers/ids (broker epoch)</th><th>teach</th></tr></thead><tbody></tbody></table>
<div id="controller"></div>
<p id="controls"><button id="elect-preferred">preferred leader election</button>
produce <input id="burst-count" type="number" min="1" max="100000" value="1000" style="width:6em"> records to
<select id="burst-topic"></select> <button id="produce-burst">produce</button></p>
<h2>Partitions <label style="font-weight:normal;font-size:.8em"><input type="checkbox" id="show-internal"> show internal topics <span id="internal-count"></span></label></h2>
<table id="partitions"><thead><tr><th>partition</th><th>replicas</th><th>leader</th><th>leader epoch</th><th>ISR</th><th>zkVersion</th><th>high watermark</th></tr></thead><tbody></tbody></table>
<h2>Consumer groups</h2>
<table id="groups"><thead><tr><th>group</th><th>state</th><th>members</th><th>coordinator</th><th>lag</th></tr></thead><tbody></tbody></table>
<div id="errors"></div>
</div>
<div>
<h2>ZooKeeper znodes <span style="font-weight:normal;font-size:.8em" id="znode-count"></span></h2>
<div id="znodes-box"><table id="znodes"><thead><tr><th>znode</th><th>kind</th><th>version</th><th>data</th></tr></thead><tbody></tbody></table></div>
<h2>Timeline (newest first) <label style="font-weight:normal;font-size:.8em"><input type="checkbox" id="show-steps" checked> controller and broker steps (state-change.log)</label></h2>
<ol id="timeline"></ol>
</div>
</div>
<script>
"use strict";
const $ = (s) => document.querySelector(s);
const esc = (v) => String(v === null || v === undefined ? "\\u2013" : v).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const fmt = (ms) => { const d = new Date(ms); return d.toLocaleTimeString([], {hour12: false}) + "." + String(d.getMilliseconds()).padStart(3, "0"); };
let lastParts = {}, changedAt = {};
// replace a table's rows only when they changed, so buttons under the pointer stay put
function put(sel, html) { const el = $(sel); if (el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; } }
function render(st) {
  const zkUp = st.zk_nodes.filter((n) => n.up).length;
  $("#status").innerHTML = "cluster <code>" + esc(st.cluster_dir) + "</code> &middot; ZooKeeper " +
    (st.zk_connected ? '<span class="good">connected</span>' : '<span class="bad">DOWN (not reachable)</span>') +
    " (" + zkUp + "/" + st.zk_nodes.length + " nodes serving) &middot; snapshot " + fmt(st.taken_ms);
  put("#zk tbody", st.zk_nodes.map((n) => '<tr class="' + (n.up ? "" : "down") + '"><td>' + esc(n.address) +
    "</td><td>" + (n.up ? esc(n.mode) : '<span class="badge dead">down</span>') + "</td><td>" + esc(n.zxid) + "</td></tr>").join(""));
  const ctl = st.controller ? st.controller.id : null;
  const leads = {};
  st.partitions.forEach((p) => { if (!p.internal) leads[p.leader] = (leads[p.leader] || 0) + 1; });
  put("#brokers tbody", Object.values(st.brokers).map((b) =>
    '<tr id="broker-' + b.id + '" data-broker="' + b.id + '" class="broker' + (b.id === ctl ? " controller" : "") + (b.registered ? "" : " down") + '">' +
    "<td>" + b.id + (b.id === ctl ? ' <span class="badge ctl">controller</span>' : "") + "</td><td>" + esc(b.address) + "</td>" +
    "<td>" + (b.alive ? "pid " + esc(b.pid) : '<span class="badge dead">not running</span>') + "</td>" +
    "<td>" + (b.registered ? "registered (" + esc(b.epoch) + ")" + (leads[b.id] ? ' <span class="badge leader">leads ' + leads[b.id] + "</span>" : "") : '<span class="badge dead">no registration</span>') + "</td>" +
    '<td><button class="kill" data-broker="' + b.id + '"' + (b.alive ? "" : " disabled") + ">kill -9</button>" +
    '<button class="restart" data-broker="' + b.id + '"' + (b.alive ? " disabled" : "") + ">restart</button>" +
    '<button class="pause" data-broker="' + b.id + '"' + (b.alive ? "" : " disabled") + ">pause</button>" +
    '<button class="resume" data-broker="' + b.id + '"' + (b.alive ? "" : " disabled") + ">resume</button>" +
    '<button class="cut-zk" data-broker="' + b.id + '"' + (b.alive ? "" : " disabled") + ">cut ZK</button>" +
    '<button class="heal-zk" data-broker="' + b.id + '">heal ZK</button></td></tr>').join(""));
  const topics = [...new Set(st.partitions.filter((p) => !p.internal).map((p) => p.topic))].sort();
  put("#burst-topic", topics.map((t) => '<option value="' + esc(t) + '">' + esc(t) + "</option>").join(""));
  put("#controller", st.controller ? "Controller: broker <b id=\\"controller-id\\">" + st.controller.id + "</b>, controller epoch " + esc(st.controller.epoch) +
    " (elected " + fmt(st.controller.since_ms) + ")" : (st.zk_connected ? '<span class="bad">no active controller</span>' : ""));
  const now = {};
  const showInternal = $("#show-internal").checked;
  $("#internal-count").textContent = "(" + st.partitions.filter((p) => p.internal).length + " partitions)";
  put("#partitions tbody", st.partitions.filter((p) => showInternal || !p.internal).map((p) => {
    const key = p.topic + "-" + p.partition, sig = JSON.stringify([p.leader, p.leader_epoch, p.isr]);
    now[key] = sig;
    if (lastParts[key] !== undefined && lastParts[key] !== sig) changedAt[key] = Date.now();
    const changed = Date.now() - (changedAt[key] || 0) < 3000;
    return '<tr class="partition' + (changed ? " changed" : "") + '" data-partition="' + esc(key) + '"><td>' + esc(key) + "</td><td>" + esc(p.replicas.join(",")) +
      "</td><td>" + (p.leader === -1 ? '<span class="badge dead">none</span>' : esc(p.leader)) + "</td><td>" + esc(p.leader_epoch) + "</td><td>" + esc(p.isr.join(",")) +
      "</td><td>" + esc(p.zk_version) + "</td><td>" + esc(p.high_watermark) + "</td></tr>";
  }).join(""));
  lastParts = now;
  renderZnodes(st, showInternal);
  put("#groups tbody", st.groups.map((g) => "<tr><td>" + esc(g.group) + "</td><td>" + esc(g.state) + "</td><td>" + esc(g.members) +
    "</td><td>" + esc(g.coordinator) + "</td><td>" + esc(g.lag) + "</td></tr>").join("") || '<tr><td colspan="5">none</td></tr>');
  $("#errors").textContent = st.errors.join(" \\u00b7 ");
}
let lastZnodes = {}, znodeChangedAt = {};
const INTERNAL_PARTITIONS = new RegExp("^/brokers/topics/__[a-z_]+/partitions/");
function renderZnodes(st, showInternal) {
  const now = {}, rows = [];
  let hidden = 0;
  st.znodes.forEach((z) => {
    const sig = JSON.stringify([z.version, z.cversion, z.mtime_ms, z.owner]);
    now[z.path] = sig;
    if (lastZnodes[z.path] !== sig && Object.keys(lastZnodes).length) znodeChangedAt[z.path] = Date.now();
    if (!showInternal && INTERNAL_PARTITIONS.test(z.path)) { hidden++; return; }
    const depth = z.path === "/" ? 0 : z.path.split("/").length - 1, name = z.path === "/" ? "/" : z.path.split("/").pop();
    const changed = Date.now() - (znodeChangedAt[z.path] || 0) < 3000;
    rows.push('<tr class="znode' + (changed ? " changed" : "") + (z.ephemeral ? " ephemeral" : "") + '" data-path="' + esc(z.path) + '" title="' + esc(z.path) + '">' +
      '<td style="padding-left:' + (4 + depth * 14) + 'px">' + esc(name) + (z.children ? " (" + z.children + ")" : "") + "</td>" +
      "<td>" + (z.ephemeral ? '<span class="badge eph">ephemeral ' + esc(z.owner) + "</span>" : "persistent") + "</td>" +
      "<td>" + esc(z.version) + '</td><td class="data">' + esc(z.data) + "</td></tr>");
  });
  lastZnodes = now;
  put("#znodes tbody", rows.join(""));
  $("#znode-count").textContent = "(" + st.znodes.length + (st.znodes_truncated ? "+, truncated" : "") + " znodes" +
    (hidden ? ", " + hidden + " of internal topics' partitions hidden" : "") + ")";
}
function addEvents(evs) {
  const ol = $("#timeline");
  evs.forEach((e) => {
    const li = document.createElement("li");
    li.className = "ev k-" + e.kind; li.dataset.seq = e.seq;
    li.innerHTML = '<span class="ts" title="' + (e.at_or_before ? "at or before this time (seen by polling)" : "") + '">' + (e.at_or_before ? "\u2264" : "&nbsp;") + fmt(e.ts_ms) + "</span>" + esc(e.text);
    ol.insertBefore(li, ol.firstChild);
  });
}
let lastSeq = 0, lastState = null;
document.addEventListener("change", (ev) => {
  if (ev.target.id === "show-internal" && lastState) render(lastState);
  if (ev.target.id === "show-steps") $("#timeline").classList.toggle("hide-steps", !ev.target.checked);
});
function connect() {
  const es = new EventSource("/events?since=" + lastSeq);
  es.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    addEvents(msg.events.filter((e) => e.seq > lastSeq));
    if (msg.events.length) lastSeq = Math.max(lastSeq, ...msg.events.map((e) => e.seq));
    lastState = msg.state;
    render(msg.state);
  };
  es.onerror = () => { $("#status").innerHTML = '<span class="bad">dashboard connection lost; retrying&hellip;</span>'; };
}
async function post(path, body, what) {
  const r = await fetch(path, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
  if (!r.ok) { const b = await r.json().catch(() => ({})); window.alert(what + ": " + (b.error || r.status)); }
}
const QUESTIONS = {
  kill: (id) => "kill -9 broker " + id + "? Its process dies at once; its ZooKeeper session expires after the session timeout.",
  restart: (id) => "restart broker " + id + "?",
  pause: (id) => "pause broker " + id + " (SIGSTOP)? It keeps its sockets but answers nothing; its ZooKeeper session expires after the session timeout.",
  "cut-zk": (id) => "cut broker " + id + " from ZooKeeper (iptables)? It keeps serving clients, but its session expires and the controller moves its partitions.",
};
document.addEventListener("click", async (ev) => {
  const t = ev.target;
  if (t.tagName !== "BUTTON") return;
  if (t.id === "elect-preferred") {
    if (window.confirm("Elect the preferred replica (the first of each partition's replicas) as leader of every partition?"))
      await post("/api/elect-preferred", {confirm: true}, "preferred leader election");
    return;
  }
  if (t.id === "produce-burst") {
    await post("/api/produce", {topic: $("#burst-topic").value, count: parseInt($("#burst-count").value, 10)}, "produce");
    return;
  }
  if (!t.dataset.broker) return;
  const id = t.dataset.broker, action = ["kill", "restart", "pause", "resume", "cut-zk", "heal-zk"].find((a) => t.classList.contains(a));
  if (QUESTIONS[action] && !window.confirm(QUESTIONS[action](id))) return;
  await post("/api/brokers/" + id + "/" + action, QUESTIONS[action] ? {confirm: true} : {}, action + " broker " + id);
});
connect();
</script>
</body></html>
"""
