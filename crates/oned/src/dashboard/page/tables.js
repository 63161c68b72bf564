// The cloud's pools as sortable, filterable tables, and the detail view of one object (its XML
// as the API returns it). Every value reaches the page as text, never as markup.

import { call, text, parseXml } from "./rpc.js";

const VM_STATES = ["INIT", "PENDING", "HOLD", "ACTIVE", "STOPPED", "SUSPENDED", "DONE", "FAILED",
  "POWEROFF", "UNDEPLOYED", "CLONING", "CLONING_FAILURE"];
const LCM_STATES = { 0: "LCM_INIT", 1: "PROLOG", 2: "BOOT", 3: "RUNNING", 4: "MIGRATE", 5: "SAVE_STOP",
  6: "SAVE_SUSPEND", 7: "SAVE_MIGRATE", 8: "PROLOG_MIGRATE", 9: "PROLOG_RESUME", 10: "EPILOG_STOP",
  11: "EPILOG", 12: "SHUTDOWN", 15: "CLEANUP_RESUBMIT", 16: "UNKNOWN", 17: "HOTPLUG",
  18: "SHUTDOWN_POWEROFF", 19: "BOOT_UNKNOWN", 20: "BOOT_POWEROFF", 21: "BOOT_SUSPENDED",
  22: "BOOT_STOPPED", 23: "CLEANUP_DELETE", 36: "FAILURE", 60: "BACKUP", 61: "BACKUP_POWEROFF" };
const HOST_STATES = ["INIT", "MONITORING_MONITORED", "MONITORED", "ERROR", "DISABLED",
  "MONITORING_ERROR", "MONITORING_INIT", "MONITORING_DISABLED", "OFFLINE"];
const IMAGE_STATES = ["INIT", "READY", "USED", "DISABLED", "LOCKED", "ERROR", "CLONE", "DELETE",
  "USED_PERS", "LOCKED_USED", "LOCKED_USED_PERS"];
const VNET_STATES = ["INIT", "READY", "LOCK_CREATE", "LOCK_DELETE", "DONE", "ERROR", "UPDATE_FAILURE"];

const named = (list) => (n) => list[Number(n)] ?? `STATE ${n}`;

export function vmState(node) {
  const s = Number(text(node, "STATE"));
  if (s === 3) return LCM_STATES[Number(text(node, "LCM_STATE"))] ?? "ACTIVE";
  return VM_STATES[s] ?? `STATE ${s}`;
}

function lastHost(node) {
  const h = node.querySelectorAll("HISTORY_RECORDS > HISTORY > HOSTNAME");
  return h.length ? h[h.length - 1].textContent : "";
}

/** Each family: its pool call, info method, element and columns (header, value of a node). */
export const FAMILIES = {
  hosts: { pool: ["one.hostpool.info"], info: "one.host.info", tag: "HOST",
    cols: [["ID", (n) => text(n, "ID")], ["Name", (n) => text(n, "NAME")],
      ["State", (n) => named(HOST_STATES)(text(n, "STATE"))],
      ["CPU used", (n) => `${text(n, "HOST_SHARE/CPU_USAGE")} / ${text(n, "HOST_SHARE/TOTAL_CPU")}`],
      ["Memory used (KB)", (n) => `${text(n, "HOST_SHARE/MEM_USAGE")} / ${text(n, "HOST_SHARE/TOTAL_MEM")}`],
      ["VMs", (n) => text(n, "HOST_SHARE/RUNNING_VMS")]] },
  vms: { pool: ["one.vmpool.info", -2, -1, -1, -1], info: "one.vm.info", tag: "VM",
    cols: [["ID", (n) => text(n, "ID")], ["Name", (n) => text(n, "NAME")], ["Owner", (n) => text(n, "UNAME")],
      ["State", vmState], ["Host", lastHost]] },
  templates: { pool: ["one.templatepool.info", -2, -1, -1], info: "one.template.info", tag: "VMTEMPLATE",
    cols: [["ID", (n) => text(n, "ID")], ["Name", (n) => text(n, "NAME")], ["Owner", (n) => text(n, "UNAME")]] },
  images: { pool: ["one.imagepool.info", -2, -1, -1], info: "one.image.info", tag: "IMAGE",
    cols: [["ID", (n) => text(n, "ID")], ["Name", (n) => text(n, "NAME")], ["Owner", (n) => text(n, "UNAME")],
      ["State", (n) => named(IMAGE_STATES)(text(n, "STATE"))], ["Datastore", (n) => text(n, "DATASTORE")]] },
  networks: { pool: ["one.vnpool.info", -2, -1, -1], info: "one.vn.info", tag: "VNET",
    cols: [["ID", (n) => text(n, "ID")], ["Name", (n) => text(n, "NAME")], ["Owner", (n) => text(n, "UNAME")],
      ["State", (n) => named(VNET_STATES)(text(n, "STATE"))], ["Leases", (n) => text(n, "USED_LEASES")]] },
  users: { pool: ["one.userpool.info"], info: "one.user.info", tag: "USER",
    cols: [["ID", (n) => text(n, "ID")], ["Name", (n) => text(n, "NAME")], ["Group", (n) => text(n, "GNAME")],
      ["Enabled", (n) => (text(n, "ENABLED") === "1" ? "yes" : "no")]] },
  groups: { pool: ["one.grouppool.info"], info: "one.group.info", tag: "GROUP",
    cols: [["ID", (n) => text(n, "ID")], ["Name", (n) => text(n, "NAME")],
      ["Users", (n) => String(n.querySelectorAll("USERS > ID").length)]] },
};

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/** Reads a family's pool: the object nodes, or throws the API's message. */
export async function readPool(family) {
  const f = FAMILIES[family];
  const r = await call(...f.pool);
  if (!r.ok) throw new Error(r.message);
  const root = parseXml(r.value);
  return [...root.children].filter((c) => c.tagName === f.tag);
}

/** A table that keeps its sort column and filter across refreshes. */
export class PoolTable {
  constructor(family, container, { rowActions = null, onDetail } = {}) {
    this.family = family;
    this.f = FAMILIES[family];
    this.sort = { col: 0, dir: 1 };
    this.filter = el("input", { type: "search", placeholder: "filter", class: "filter", id: `${family}-filter` });
    this.filter.addEventListener("input", () => this.draw());
    this.table = el("table", { class: "pool", id: `${family}-table` });
    this.rowActions = rowActions;
    this.onDetail = onDetail;
    this.rows = [];
    container.replaceChildren(this.filter, this.table);
  }

  set(nodes) {
    this.rows = nodes.map((n) => ({ node: n, cells: this.f.cols.map(([, get]) => get(n)) }));
    this.draw();
  }

  draw() {
    const q = this.filter.value.trim().toLowerCase();
    const { col, dir } = this.sort;
    const num = (s) => (s !== "" && !isNaN(Number(s)) ? Number(s) : null);
    const rows = this.rows
      .filter((r) => !q || r.cells.some((c) => c.toLowerCase().includes(q)))
      .sort((a, b) => {
        const [x, y] = [a.cells[col], b.cells[col]];
        const [nx, ny] = [num(x), num(y)];
        return dir * (nx !== null && ny !== null ? nx - ny : x.localeCompare(y));
      });
    const head = el("tr", {}, ...this.f.cols.map(([name], i) => {
      const mark = i === col ? (dir > 0 ? " ▲" : " ▼") : "";
      return el("th", { class: "sortable", onclick: () => {
        this.sort = { col: i, dir: i === col ? -dir : 1 };
        this.draw();
      } }, name + mark);
    }), ...(this.rowActions ? [el("th", {}, "Actions")] : []));
    const body = rows.map((r) => {
      const id = text(r.node, "ID");
      const tr = el("tr", { "data-id": id }, ...r.cells.map((c, i) => el("td", { class: `c${i}` }, c)));
      tr.querySelectorAll("td").forEach((td) => td.addEventListener("click", () => this.onDetail?.(id)));
      if (this.rowActions) tr.append(el("td", { class: "actions" }, ...this.rowActions(id, r.node)));
      return tr;
    });
    this.table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
  }
}

/** Shows one object's XML as the API returns it. */
export async function showDetail(family, id, pane) {
  const f = FAMILIES[family];
  const r = await call(f.info, Number(id));
  pane.replaceChildren(
    el("h3", {}, `${f.tag} ${id}`),
    el("pre", { class: "xml", id: "detail-xml" }, r.ok ? r.value : `error: ${r.message}`),
  );
}
