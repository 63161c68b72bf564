// The dashboard's calls: XML-RPC to /dashboard/api/rpc (the API dispatcher, as the cookie's
// user) and JSON from /dashboard/api/*. Every state-changing request carries the CSRF token.

let csrf = "";

export function setCsrf(token) {
  csrf = token || "";
}

/** An HTTP answer that is not a success: `status` 401 means the session is gone. */
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function escapeXml(s) {
  return String(s).replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]);
}

function encodeValue(v) {
  if (typeof v === "boolean") return `<boolean>${v ? 1 : 0}</boolean>`;
  if (typeof v === "number" && Number.isInteger(v)) return `<int>${v}</int>`;
  return `<string>${escapeXml(v)}</string>`;
}

export function encodeCall(method, params) {
  // The session parameter is empty: the server takes the user from the cookie.
  const all = ["", ...params].map((p) => `<param><value>${encodeValue(p)}</value></param>`).join("");
  return `<?xml version="1.0"?><methodCall><methodName>${escapeXml(method)}</methodName><params>${all}</params></methodCall>`;
}

function decodeValue(node) {
  const inner = [...node.children][0];
  if (!inner) return node.textContent;
  switch (inner.tagName) {
    case "int":
    case "i4":
    case "i8":
      return parseInt(inner.textContent, 10);
    case "boolean":
      return inner.textContent.trim() === "1";
    case "double":
      return parseFloat(inner.textContent);
    case "array":
      return [...inner.querySelectorAll(":scope > data > value")].map(decodeValue);
    case "struct": {
      const out = {};
      for (const m of inner.querySelectorAll(":scope > member")) {
        out[m.querySelector("name").textContent] = decodeValue(m.querySelector("value"));
      }
      return out;
    }
    default:
      return inner.textContent;
  }
}

/** Parses a methodResponse into OpenNebula's [ok, value-or-message, code]. */
export function decodeResponse(text) {
  const doc = new DOMParser().parseFromString(text, "text/xml");
  const fault = doc.querySelector("methodResponse > fault > value");
  if (fault) {
    const f = decodeValue(fault);
    return { ok: false, message: f.faultString, code: f.faultCode };
  }
  const v = doc.querySelector("methodResponse > params > param > value");
  if (!v) return { ok: false, message: "unreadable answer", code: -1 };
  const a = decodeValue(v);
  if (!Array.isArray(a)) return { ok: true, value: a };
  return a[0] ? { ok: true, value: a[1] } : { ok: false, message: a[1], code: a[2] };
}

async function checked(r) {
  if (r.ok) return r;
  let message = `HTTP ${r.status}`;
  try {
    const j = await r.json();
    if (j.error) message = j.error;
  } catch (_) {
    /* not JSON: keep the status */
  }
  throw new HttpError(r.status, message);
}

/** One API call; resolves to {ok, value} or {ok: false, message, code}. */
export async function call(method, ...params) {
  const r = await fetch("/dashboard/api/rpc", {
    method: "POST",
    headers: { "content-type": "text/xml", "x-oneha-csrf": csrf },
    body: encodeCall(method, params),
    credentials: "same-origin",
  });
  await checked(r);
  return decodeResponse(await r.text());
}

export async function getJson(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  return (await checked(r)).json();
}

export async function postJson(path, body, token = csrf) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "x-oneha-csrf": token },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  return (await checked(r)).json();
}

/** The text of `path` (e.g. "HOST_SHARE/CPU_USAGE") under element `node`. */
export function text(node, path) {
  let cur = node;
  for (const part of path.split("/")) {
    cur = cur && [...cur.children].find((c) => c.tagName === part);
  }
  return cur ? cur.textContent : "";
}

export function parseXml(s) {
  return new DOMParser().parseFromString(s, "text/xml").documentElement;
}
