// The zone view: each server's Raft state as it tells it, the leader and the floating IP, the
// timeline, and the charts of commit progress and write latency drawn from successive polls.

import { lines } from "./charts.js";
import { el } from "./tables.js";

const HISTORY = 90; // samples kept per server (a minute and a half at one a second)
const history = new Map(); // server id -> [[time, commit]]
const latency = new Map(); // server id -> {last: {count, seconds}, points: [[time, ms]]}

function remember(id, t, commit) {
  if (commit < 0) return;
  const h = history.get(id) || [];
  h.push([t, commit]);
  while (h.length > HISTORY) h.shift();
  history.set(id, h);
}

// The mean commit latency of the writes a server answered since the previous poll.
function rememberWrites(id, t, writes) {
  if (!writes) return;
  const l = latency.get(id) || { last: null, points: [] };
  if (l.last && writes.count > l.last.count) {
    const ms = (1000 * (writes.seconds - l.last.seconds)) / (writes.count - l.last.count);
    l.points.push([t, Math.max(0, ms)]);
    while (l.points.length > HISTORY) l.points.shift();
  }
  l.last = writes;
  latency.set(id, l);
}

/** Draws the servers table; `actions(id)` gives the buttons of a row. */
export function drawZone(zone, names, { table, leaderBox, timelineBox, commitChart, writesChart, latencyChart, actions }) {
  const t = Date.now() / 1000;
  const told = zone.servers.map((s) => s.status).filter(Boolean);
  const leaders = told.filter((s) => s.role === "leader" || s.role === "solo");
  const leader = leaders.length === 1 ? leaders[0] : null;
  const here = zone.servers.find((s) => s.id === zone.here)?.status;
  const vip = leader?.floating_ip || here?.floating_ip;
  leaderBox.replaceChildren(
    el("span", { id: "leader-id", "data-leader": leader ? leader.server_id : -1 },
      leader ? `leader: server ${leader.server_id} (term ${leader.term})` : "no leader (election running?)"),
    vip ? el("span", { class: "vip" }, ` · floating IP ${vip} on server ${leader ? leader.server_id : "?"}`) : "",
  );
  const data = zone.servers.map((s) => {
    const st = s.status;
    if (st) remember(s.id, t, st.commit);
    if (st) rememberWrites(s.id, t, st.writes);
    const matched = leader?.replication?.[String(s.id)];
    const lag = !st || !leader ? "" : String(Math.max(0, leader.log_index - (matched ?? st.log_index)));
    const isLeader = st?.role === "leader" || st?.role === "solo";
    return [s.id, names.get(s.id) || "", s.endpoint, st ? st.role : `down (${s.error || "no answer"})`,
      st ? String(st.term) : "", st ? String(st.log_index) : "", st ? String(st.commit) : "",
      st ? String(st.votedfor) : "", lag, isLeader ? (vip ? `★ leads, holds ${vip}` : "★ leads") : "",
      isLeader ? "leader" : st ? "" : "down"];
  });
  // Redrawn only when something changed: a button is not replaced under the pointer.
  const sig = JSON.stringify(data);
  if (table.dataset.sig !== sig) {
    table.dataset.sig = sig;
    const rows = data.map((d) => el("tr", { "data-id": d[0], class: d[10] },
      ...d.slice(0, 10).map((v, i) => el("td", { class: ["id", "name", "endpoint", "state", "term", "index",
        "commit", "vote", "lag", "lead"][i] }, String(v))),
      el("td", { class: "actions" }, ...actions(d[0]))));
    const head = el("tr", {}, ...["ID", "Name", "Endpoint", "State", "Term", "Index", "Commit", "Vote",
      "Lag", "Leader", "Actions"].map((h) => el("th", {}, h)));
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }
  const series = [...history.entries()].map(([id, pts]) => ({ name: `server ${id}`, points: pts }));
  lines(commitChart, "commit index per server", series);
  lines(writesChart, "writes/s per server (commit index rate)", series.map((s) => ({
    name: s.name,
    points: s.points.slice(1).map((p, i) => [p[0], Math.max(0, (p[1] - s.points[i][1]) / Math.max(0.001, p[0] - s.points[i][0]))]),
  })));
  if (latencyChart) {
    lines(latencyChart, "write commit latency per server (ms, mean per poll)",
      [...latency.entries()].map(([id, l]) => ({ name: `server ${id}`, points: l.points })));
  }
  const events = here?.timeline || [];
  timelineBox.replaceChildren(...events.slice(0, 40).map((e) => el("li", { class: `ev-${e.kind}` },
    el("time", {}, new Date(e.time * 1000).toLocaleTimeString()), ` ${e.kind}: ${e.text}`)));
  if (!events.length) timelineBox.append(el("li", {}, "nothing yet"));
  return leader;
}
