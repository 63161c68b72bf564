// The dashboard page: log in, poll the zone once a second from the same origin (the floating
// IP when loaded through it), show the cloud's pools, and run the few actions through the API.

import { call, getJson, postJson, setCsrf, HttpError, parseXml, text } from "./rpc.js";
import { bars } from "./charts.js";
import { el, FAMILIES, PoolTable, readPool, showDetail, vmState } from "./tables.js";
import { drawZone } from "./zone.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;

const state = {
  me: null,
  view: "zone",
  servedBy: null, // the server id that last answered
  lost: false,
  names: new Map(),
  tables: {},
  timer: null,
  gen: 0,
};

function notice(message, ok) {
  const n = $("notice");
  n.textContent = message;
  n.className = ok ? "ok" : "error";
}

/** Runs an action through the API and reports its outcome. */
async function act(what, method, ...params) {
  try {
    const r = await call(method, ...params);
    if (r.ok) notice(`${what}: done${r.value !== undefined && r.value !== "" ? ` (${r.value})` : ""}`, true);
    else notice(`${what} refused: ${r.message}`, false);
    refresh();
    return r;
  } catch (e) {
    notice(`${what} failed: ${e.message}`, false);
    if (e instanceof HttpError && e.status === 401) showLogin();
    return null;
  }
}

function showLogin(message = "") {
  state.me = null;
  clearTimeout(state.timer);
  $("app").hidden = true;
  $("logout").hidden = true;
  $("whoami").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
}

function showApp(me) {
  state.me = me;
  setCsrf(me.csrf);
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("whoami").textContent = `${me.user}${me.admin ? " (admin)" : ""}`;
  refresh();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const me = await postJson("/dashboard/api/login", {
      user: $("login-user").value,
      password: $("login-password").value,
    }, "login");
    $("login-password").value = "";
    const full = await getJson("/dashboard/api/me");
    showApp({ ...me, ...full });
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await postJson("/dashboard/api/logout", {});
  } finally {
    showLogin();
  }
});

for (const b of document.querySelectorAll("#tabs button")) {
  b.addEventListener("click", () => {
    state.view = b.dataset.view;
    for (const o of document.querySelectorAll("#tabs button")) o.classList.toggle("active", o === b);
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${state.view}`;
    $("detail").replaceChildren();
    refresh();
  });
}

function serverActions(id) {
  const zone = state.me.zone_id;
  return [
    el("button", { class: "reset", "data-id": id, onclick: () => act(`server-reset ${id}`, "one.zone.resetserver", zone, id) }, "reset"),
    el("button", { class: "del", "data-id": id, onclick: () => act(`server-del ${id}`, "one.zone.delserver", zone, id) }, "delete"),
  ];
}

$("server-add-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const [name, endpoint] = [$("server-add-name").value, $("server-add-endpoint").value];
  if (/["\]\n]/.test(name + endpoint)) return notice("names and endpoints cannot hold quotes or brackets", false);
  act(`server-add ${name}`, "one.zone.addserver", state.me.zone_id, `SERVER = [ NAME = "${name}", ENDPOINT = "${endpoint}" ]`);
});

$("vm-create-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act("create VM", "one.vm.allocate", $("vm-template").value, false);
});

$("vm-instantiate-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = parseInt($("vm-instantiate-template").value, 10);
  if (!Number.isInteger(id)) return notice("a template id is a number", false);
  act(`instantiate template ${id}`, "one.template.instantiate", id, $("vm-instantiate-name").value, false, "", false);
});

$("user-create-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act(`create user ${$("user-create-name").value}`, "one.user.allocate",
    $("user-create-name").value, $("user-create-password").value, "");
  $("user-create-password").value = "";
});

function vmActions(id) {
  const a = (action) => el("button", { class: action, "data-id": id, onclick: () => act(`${action} VM ${id}`, "one.vm.action", action, Number(id)) }, action);
  return [a("poweroff"), a("resume"), a("terminate")];
}

function table(family) {
  if (!state.tables[family]) {
    state.tables[family] = new PoolTable(family, $(`${family}-box`), {
      rowActions: family === "vms" ? vmActions : null,
      onDetail: (id) => showDetail(family, id, $("detail")),
    });
  }
  return state.tables[family];
}

/** Notes which server answered, and says so when it changed or came back. */
function answeredBy(id) {
  const conn = $("conn");
  if (state.lost || (state.servedBy !== null && state.servedBy !== id)) {
    conn.textContent = `reconnected to server ${id}`;
    conn.className = "conn back";
  }
  state.lost = false;
  state.servedBy = id;
  $("server").textContent = `served by server ${id}`;
  $("server").dataset.server = id;
}

async function refreshZone() {
  const zone = await getJson("/dashboard/api/zone");
  if (!zone.servers.length) {
    // A solo server is no Raft member: it tells only of itself.
    const st = await getJson("/dashboard/api/status");
    zone.servers.push({ id: st.server_id, endpoint: location.origin, status: st, error: null });
    zone.here = st.server_id;
  }
  answeredBy(zone.here);
  drawZone(zone, state.names, {
    table: $("servers"), leaderBox: $("leader-box"), timelineBox: $("timeline"),
    commitChart: $("chart-commit"), writesChart: $("chart-writes"), latencyChart: $("chart-latency"), actions: serverActions,
  });
  // Names change rarely; the zone's XML is read as the user may read it.
  const info = await call("one.zone.info", state.me.zone_id);
  if (info.ok) {
    for (const s of parseXml(info.value).querySelectorAll("SERVER_POOL > SERVER")) {
      state.names.set(Number(text(s, "ID")), text(s, "NAME"));
    }
  }
}

async function refreshPool(family) {
  const nodes = await readPool(family);
  table(family).set(nodes);
  if (family === "hosts") {
    const share = (n, used, max) => ({ name: text(n, "NAME"), value: Number(text(n, `HOST_SHARE/${used}`)), max: Number(text(n, `HOST_SHARE/${max}`)) });
    bars($("chart-host-cpu"), "host CPU use", nodes.map((n) => share(n, "CPU_USAGE", "TOTAL_CPU")), { percent: true });
    bars($("chart-host-mem"), "host memory use", nodes.map((n) => share(n, "MEM_USAGE", "TOTAL_MEM")), { percent: true });
  }
  if (family === "vms") {
    const counts = new Map();
    for (const n of nodes) counts.set(vmState(n), (counts.get(vmState(n)) || 0) + 1);
    bars($("chart-vm-states"), "VMs by state", [...counts].map(([name, value]) => ({ name, value })));
  }
}

async function refresh() {
  clearTimeout(state.timer);
  // An action's refresh and the timer's must not make two polling loops.
  const gen = ++state.gen;
  if (!state.me) return;
  try {
    if (state.view === "zone") await refreshZone();
    else if (FAMILIES[state.view]) {
      const st = await getJson("/dashboard/api/status");
      answeredBy(st.server_id);
      await refreshPool(state.view);
    }
  } catch (e) {
    if (e instanceof HttpError && e.status === 401) return showLogin("your session ended: log in again");
    // The server that answered is gone or busy: keep polling the same origin, which the
    // floating IP moves to the new leader.
    state.lost = true;
    $("conn").textContent = `connection lost (${e.message}); retrying…`;
    $("conn").className = "conn lost";
  }
  if (gen === state.gen) state.timer = setTimeout(refresh, POLL_MS);
}

(async () => {
  try {
    showApp(await getJson("/dashboard/api/me"));
  } catch (_) {
    showLogin();
  }
})();
