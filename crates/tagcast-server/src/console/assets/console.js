// The console's page. Its API is under the console's path (data-base): sign-in, the session,
// and each app's calls, the REST API among them (`api/v4/<route>`). The session is an HttpOnly
// cookie the page never sees; every call for an app sends that sign-in's CSRF token. Every
// error is shown as the server gave it: "code: text".
import { TagcastClient } from "./tagcast.js";

const base = document.querySelector("script[data-base]").dataset.base;
const $ = (id) => document.getElementById(id);

/** The sign-ins of the session, and the one the pages work on. */
const session = { apps: [], current: null };

async function call(method, path, body, csrf) {
  const headers = { "Content-Type": "application/json" };
  if (csrf) headers["X-Tagcast-Csrf"] = csrf;
  const response = await fetch(`${base}/api/${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  try {
    return await response.json();
  } catch {
    return { ActionStatus: "FAIL", ErrorCode: response.status, ErrorInfo: response.statusText };
  }
}

/** A call of the current app's console API: `name` is e.g. `overview` or `v4/timpush/get_tag`. */
function appCall(name, body = {}) {
  const app = session.current;
  return call("POST", `${name}?sdkappid=${app.SdkAppId}`, body, app.Csrf);
}

/** `appCall`'s answer when OK; else it throws the server's error. */
async function appCallOk(name, body) {
  const answer = await appCall(name, body);
  if (answer.ActionStatus !== "OK") throw new Error(failure(answer));
  return answer;
}

/** A REST API call as the signed-in admin; throws the server's error. */
const api = (route, body) => appCallOk(`v4/${route}`, body);

/** "code: text" of a failed answer, as the server gave it. */
const failure = (answer) => `${answer.ErrorCode}: ${answer.ErrorInfo}`;

/** "code: text" for each failed account of an answer's ErrorList. */
function errorList(answer) {
  return (answer.ErrorList || [])
    .map((e) => `${e.To_Account}: ${e.ErrorCode}: ${e.ErrorInfo || ""}`).join("; ");
}

/** Runs `work`, showing its error (or "") in the element `errorId`. */
async function shown(errorId, work) {
  const place = $(errorId);
  place.textContent = "";
  try {
    await work();
  } catch (error) {
    place.textContent = error.message;
  }
}

/** An element with attributes and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

const nowSecs = () => Math.floor(Date.now() / 1000);
const when = (secs) => new Date(secs * 1000).toLocaleString();

/** A statistics window of the last `days` days (7 at most), up to a minute ahead: a push made
 * within the current second is in it, and so is one from a server clock a little ahead. */
function lastDays(days) {
  const end = nowSecs() + 60;
  return { StartTime: end - days * 86400, EndTime: end };
}

// ---- Sign-in and the app bar

function showSession(answer) {
  session.apps = answer.ActionStatus === "OK" ? answer.SignedIn : [];
  const keep = session.apps.find((a) => a.SdkAppId === session.current?.SdkAppId);
  session.current = keep || session.apps[session.apps.length - 1] || null;
  $("signed-in").hidden = session.apps.length === 0;
  $("app-bar").hidden = $("pages").hidden = !session.current;
  $("apps").replaceChildren(...session.apps.map((app) => el("li", {},
    `App ${app.SdkAppId} as ${app.Identifier} `,
    el("button", { type: "button", onclick: () => signOut(app) }, `Sign out of ${app.SdkAppId}`))));
  $("app").replaceChildren(...session.apps.map((app) => el("option", {
    value: app.SdkAppId, selected: app === session.current,
  }, `${app.SdkAppId} (${app.Identifier})`)));
  route();
}

async function signOut(app) {
  showSession(await call("POST", `sign_out?sdkappid=${app.SdkAppId}`, undefined, app.Csrf));
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const credential = { [form.kind.value]: form.secret.value };
  const answer = await call("POST", "sign_in", {
    SdkAppId: Number(form.sdkappid.value), Identifier: form.identifier.value, ...credential,
  });
  $("sign-in-error").textContent =
    answer.ActionStatus === "OK" ? "" : failure(answer);
  form.secret.value = "";
  if (answer.ActionStatus !== "OK") return;
  session.current = answer.SignedIn.find((a) => a.SdkAppId === Number(form.sdkappid.value));
  showSession(answer);
  if (location.hash === "" || location.hash === "#sign-in") location.hash = "#overview";
});

$("app").addEventListener("change", (event) => {
  session.current = session.apps.find((a) => a.SdkAppId === Number(event.target.value));
  route();
});
$("sign-out").addEventListener("click", () => signOut(session.current));

// ---- Pages: one shown at a time, by the URL's fragment

const loaders = {};

function route() {
  const wanted = location.hash.slice(1) || "overview";
  const known = document.getElementById(wanted)?.classList.contains("page");
  const page = session.current && known ? wanted : "sign-in";
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== page;
  for (const link of document.querySelectorAll("#pages a")) {
    if (link.hash === `#${page}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (loaders[page]) loaders[page]();
}

window.addEventListener("hashchange", () => {
  route();
  $("main").focus();
});

// ---- Overview

loaders.overview = () => shown("overview-error", async () => {
  const answer = await appCallOk("overview");
  figures("overview-figures", [
    ["Accounts", answer.Accounts],
    ["Tags in use", answer.TagsInUse],
    ["Online on this node", answer.OnlineHere],
    ["Accounts with devices", answer.AccountsWithDevices],
    ["APNs devices", answer.Devices.apns],
    ["FCM devices", answer.Devices.fcm],
    ["Web Push devices", answer.Devices.webpush],
    ["Pushes today (quota)", `${answer.PushesToday} of ${answer.DailyQuota}`],
  ]);
  const stats = await api("timpush/all_member_push_statistics", lastDays(1));
  const sum = (f) => stats.Results.reduce((total, r) => total + f(r), 0);
  const audience = sum((r) => r.AudienceCount);
  const requests = sum((r) => r.OfflinePush.Platforms.reduce((t, p) => t + p.Requests, 0));
  const accepted = sum((r) => r.OfflinePush.Platforms.reduce((t, p) => t + p.Accepted, 0));
  figures("overview-rates", [
    ["Pushes", stats.Results.length],
    ["Delivered online at send", rate(sum((r) => r.DeliveredCount - r.CaughtUpCount), audience)],
    ["Delivered on reconnect", rate(sum((r) => r.CaughtUpCount), audience)],
    ["Devices accepted", rate(accepted, requests)],
  ]);
});

function rate(part, whole) {
  return whole === 0 ? "–" : `${part} of ${whole} (${Math.round((100 * part) / whole)}%)`;
}

function figures(id, pairs) {
  $(id).replaceChildren(...pairs.flatMap(([name, value]) =>
    [el("dt", {}, name), el("dd", {}, String(value))]));
}

// ---- Accounts

let account = null;

$("account-form").addEventListener("submit", (event) => {
  event.preventDefault();
  account = $("account-id").value.trim();
  loadAccount();
});

function loadAccount() {
  return shown("account-error", async () => {
    const check = await api("im_open_login_svc/account_check", { CheckItem: [{ UserID: account }] });
    const exists = check.ResultItem?.[0]?.AccountStatus === "Imported";
    $("account").hidden = false;
    $("account-status").textContent = exists
      ? `${account} exists.` : `${account} does not exist: import it to tag it.`;
    $("account-import").hidden = exists;
    $("account-delete").hidden = !exists;
    const parts = [$("account-tags"), $("account-attrs"), $("account-devices"), $("account-pushes")];
    parts.forEach((part) => part.replaceChildren());
    if (!exists) return;
    await Promise.all([showTags(), showAttrs(), showDevices(), showAccountPushes()]);
  });
}

async function showTags() {
  const answer = await api("timpush/get_tag", { To_Account: [account] });
  const tags = answer.UserTags?.[0]?.Tags || [];
  $("account-tags").replaceChildren(...tags.map((tag) => el("li", {}, tag, " ",
    el("button", {
      type: "button", class: "secondary", "aria-label": `Remove tag ${tag}`,
      onclick: () => editAccount("timpush/remove_tag", { UserTags: [{ To_Account: account, Tags: [tag] }] }),
    }, "×"))));
}

async function showAttrs() {
  const [names, values] = await Promise.all([
    api("timpush/get_attr_name", {}),
    api("timpush/get_attr", { To_Account: [account] }),
  ]);
  const attrs = values.UserAttrs?.[0]?.Attrs || {};
  $("account-attrs").replaceChildren(...Object.values(names.AttrNames || {}).map((name) => {
    const input = el("input", { "aria-label": `Value of ${name}`, value: attrs[name] ?? "", autocomplete: "off" });
    return el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, input), el("td", {},
      el("button", {
        type: "button",
        onclick: () => editAccount("timpush/set_attr", { UserAttrs: [{ To_Account: account, Attrs: { [name]: input.value } }] }),
      }, "Save"), " ",
      el("button", {
        type: "button", class: "secondary",
        onclick: () => editAccount("timpush/remove_attr", { UserAttrs: [{ To_Account: account, Attrs: [name] }] }),
      }, "Remove")));
  }));
}

async function showDevices() {
  const answer = await api("tagcast/device_list", { To_Account: account });
  $("account-devices").replaceChildren(...(answer.Devices.length ? answer.Devices.map((d) =>
    el("li", {}, `${d.Platform} ${d.RegistrationID} (${d.Token})`)) : [el("li", {}, "No devices.")]));
}

/** The account's pushes of the last 7 days, newest first, each with a trace button. */
async function showAccountPushes() {
  const answer = await api("tagcast/account_pushes", { UserID: account, ...lastDays(7) });
  const items = answer.Pushes.map((push) => el("li", {},
    `${push.TaskID} (${when(push.TaskTime)}): ${push.PushStatus}${push.CaughtUp ? " on reconnect" : ""} `,
    el("button", {
      type: "button", class: "secondary", "aria-label": `Trace ${push.TaskID}`,
      onclick: () => { $("trace-task").value = push.TaskID; $("trace-account").value = account; location.hash = "#pushes"; trace(); },
    }, "Trace")));
  if (!answer.Complete) items.push(el("li", {}, "Older pushes are not shown."));
  $("account-pushes").replaceChildren(...(items.length ? items : [el("li", {}, "No pushes in the last 7 days.")]));
}

/** Makes a change to the account; shows the API's error or ErrorList, then reloads it. */
async function editAccount(route, body) {
  await shown("account-error", async () => {
    const answer = await api(route, body);
    const failed = errorList(answer);
    if (failed) throw new Error(failed);
  });
  const error = $("account-error").textContent;
  await loadAccount();
  if (error) $("account-error").textContent = error;
}

$("tag-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const tags = $("tag-input").value.split(",").map((t) => t.trim()).filter((t) => t);
  $("tag-input").value = "";
  editAccount("timpush/add_tag", { UserTags: [{ To_Account: account, Tags: tags }] });
});

$("account-import").addEventListener("click", () =>
  editAccount("im_open_login_svc/account_import", { UserID: account }));

$("account-delete").addEventListener("click", (event) => {
  const button = event.target;
  if (button.dataset.armed !== "1") {
    button.dataset.armed = "1";
    button.textContent = `Really delete ${account}?`;
    return;
  }
  delete button.dataset.armed;
  button.textContent = "Delete";
  editAccount("im_open_login_svc/account_delete", { DeleteItem: [{ UserID: account }] });
});

// ---- Attribute names

loaders.attributes = () => shown("attr-names-error", async () => {
  const answer = await api("timpush/get_attr_name", {});
  const names = answer.AttrNames || {};
  const types = answer.AttrTypes || {};
  $("attr-names").replaceChildren(...Array.from({ length: 10 }, (_, slot) => el("tr", {},
    el("th", { scope: "row" }, String(slot)),
    el("td", {}, el("input", {
      name: `name-${slot}`, "aria-label": `Name of slot ${slot}`, value: names[slot] ?? "", autocomplete: "off",
    })),
    el("td", {}, el("select", { name: `type-${slot}`, "aria-label": `Accounts of slot ${slot}` },
      el("option", { value: "0", selected: types[slot] !== 1 }, "UserID"),
      el("option", { value: "1", selected: types[slot] === 1 }, "RegistrationID"))))));
});

$("attr-names-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const AttrNames = {};
  const AttrTypes = {};
  for (let slot = 0; slot < 10; slot += 1) {
    const name = form[`name-${slot}`].value.trim();
    if (!name) continue;
    AttrNames[slot] = name;
    AttrTypes[slot] = Number(form[`type-${slot}`].value);
  }
  $("attr-names-saved").textContent = "";
  shown("attr-names-error", async () => {
    await api("timpush/set_attr_name", { AttrNames, AttrTypes });
    $("attr-names-saved").textContent = "Saved.";
    builder.render();
  });
});

// ---- Audience builder: a tree of groups (all of / any of), NOTs, tags and attributes

const COMPARISONS = [["Eq", "="], ["Gt", ">"], ["Ge", "≥"], ["Lt", "<"], ["Le", "≤"], ["Exists", "has a value"]];

const builder = {
  root: { kind: "And", children: [] },
  attrNames: [],
  changedAt: 0,
  timer: 0,
  asked: 0,

  /** The `Audience` expression of `node`. */
  expression(node = this.root) {
    switch (node.kind) {
      case "And": case "Or": return { [node.kind]: node.children.map((c) => this.expression(c)) };
      case "Not": return { Not: this.expression(node.child) };
      case "Tag": return { Tag: node.tag };
      default: {
        if (node.op === "Exists") return { Attr: node.attr, Exists: true };
        const value = node.op === "Eq" ? node.value : Number(node.value);
        return { Attr: node.attr, [node.op]: value };
      }
    }
  },

  async render() {
    try {
      const names = await api("timpush/get_attr_name", {});
      this.attrNames = Object.values(names.AttrNames || {});
    } catch (error) {
      $("audience-error").textContent = error.message;
    }
    $("builder").replaceChildren(this.nodeView(this.root, "r", null));
    this.changed();
  },

  nodeView(node, path, remove) {
    const removeButton = remove && el("button", {
      type: "button", class: "secondary remove", "aria-label": "Remove this condition", onclick: remove,
    }, "×");
    if (node.kind === "And" || node.kind === "Or") return this.groupView(node, path, removeButton);
    if (node.kind === "Not") {
      return el("div", { class: "node not", "data-path": path }, el("span", {}, "NOT"),
        this.nodeView(node.child, `${path}-0`, null), removeButton || "");
    }
    if (node.kind === "Tag") {
      return el("div", { class: "node tag", "data-path": path },
        el("label", { for: `tag-${path}` }, "has tag"),
        el("input", { id: `tag-${path}`, value: node.tag, autocomplete: "off", oninput: (e) => { node.tag = e.target.value; this.changed(); } }),
        removeButton || "");
    }
    return this.attrView(node, path, removeButton);
  },

  groupView(node, path, removeButton) {
    const kind = el("select", {
      id: `kind-${path}`, "aria-label": "Combine with",
      onchange: (e) => { node.kind = e.target.value; this.changed(); },
    }, el("option", { value: "And", selected: node.kind === "And" }, "all of (AND)"),
    el("option", { value: "Or", selected: node.kind === "Or" }, "any of (OR)"));
    const add = (make) => () => { node.children.push(make()); this.render(); };
    const children = node.children.map((child, i) => this.nodeView(child, `${path}-${i}`,
      () => { node.children.splice(i, 1); this.render(); }));
    return el("fieldset", { class: "node group", "data-path": path },
      el("legend", {}, "Accounts matching ", kind),
      ...children,
      el("div", { class: "add" },
        el("button", { type: "button", class: "add-tag", onclick: add(() => ({ kind: "Tag", tag: "" })) }, "+ tag"),
        el("button", { type: "button", class: "add-attr", onclick: add(() => ({ kind: "Attr", attr: this.attrNames[0] || "", op: "Eq", value: "" })) }, "+ attribute"),
        el("button", { type: "button", class: "add-not", onclick: add(() => ({ kind: "Not", child: { kind: "Tag", tag: "" } })) }, "+ NOT tag"),
        el("button", { type: "button", class: "add-group", onclick: add(() => ({ kind: "And", children: [] })) }, "+ group")),
      removeButton || "");
  },

  attrView(node, path, removeButton) {
    const value = el("input", {
      id: `value-${path}`, "aria-label": "Value", value: node.value, autocomplete: "off",
      hidden: node.op === "Exists", oninput: (e) => { node.value = e.target.value; this.changed(); },
    });
    return el("div", { class: "node attr", "data-path": path },
      el("select", { id: `attr-${path}`, "aria-label": "Attribute", onchange: (e) => { node.attr = e.target.value; this.changed(); } },
        ...this.attrNames.map((name) => el("option", { value: name, selected: name === node.attr }, name))),
      el("select", {
        id: `op-${path}`, "aria-label": "Comparison",
        onchange: (e) => { node.op = e.target.value; value.hidden = node.op === "Exists"; this.changed(); },
      }, ...COMPARISONS.map(([op, text]) => el("option", { value: op, selected: op === node.op }, text))),
      value, removeButton || "");
  },

  /** The condition changed: new JSON now, a new count once typing pauses. */
  changed() {
    this.changedAt = performance.now();
    const json = JSON.stringify({ Audience: this.expression() });
    $("audience-json").textContent = json;
    const app = session.current;
    $("audience-curl").textContent = `curl -s -X POST "$URL/tagcast/audience_count?sdkappid=${app?.SdkAppId}&identifier=${app?.Identifier}&usersig=$USERSIG&random=$RANDOM&contenttype=json" -d '${json}'`;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.count(), 150);
  },

  async count() {
    const asked = (this.asked += 1);
    const since = this.changedAt;
    const answer = await appCall("reach", { Audience: this.expression() });
    if (asked !== this.asked) return;
    const ok = answer.ActionStatus === "OK";
    $("audience-error").textContent = ok ? "" : failure(answer);
    $("count").textContent = ok ? answer.Count : "–";
    $("count-online").textContent = ok ? answer.OnlineHere : "–";
    $("count-devices").textContent = ok ? answer.WithDevices : "–";
    const took = performance.now() - since;
    $("count-time").textContent = ok ? `(${Math.round(took)} ms after the last change)` : "";
    // For tests and benchmarks: which answer this is, and how long it took.
    $("count").dataset.answer = String(asked);
    $("count").dataset.tookMs = String(took);
  },
};

loaders.audience = () => builder.render();

for (const [button, source] of [["copy-json", "audience-json"], ["copy-curl", "audience-curl"]]) {
  $(button).addEventListener("click", () => navigator.clipboard.writeText($(source).textContent));
}

// ---- Compose

function composed() {
  const text = $("compose-text").value;
  const title = $("compose-title-field").value;
  const desc = $("compose-desc").value;
  const body = { MsgRandom: Math.floor(Math.random() * 2 ** 32), From_Account: session.current.Identifier };
  if (text) body.MsgBody = [{ MsgType: "TIMTextElem", MsgContent: { Text: text } }];
  const offline = {};
  if (title) offline.Title = title;
  if (desc) offline.Desc = desc;
  if ($("compose-online-only").checked) offline.PushFlag = 1;
  if (Object.keys(offline).length || !text) body.OfflinePushInfo = offline;
  const lifetime = $("compose-lifetime").value.trim();
  const to = document.querySelector("input[name=to]:checked").value;
  if (to === "accounts") {
    body.To_Account = $("compose-accounts").value.split(",").map((a) => a.trim()).filter((a) => a);
    body.OfflinePushInfo = offline;
    return { route: "timpush/batch", body, count: body.To_Account.length };
  }
  if (lifetime) body.MsgLifeTime = Number(lifetime);
  if (to === "audience") body.Audience = builder.expression();
  return { route: "timpush/push", body };
}

function preview() {
  $("preview-title").textContent = $("compose-title-field").value || "(no title)";
  $("preview-text").textContent = $("compose-desc").value || $("compose-text").value;
}

for (const id of ["compose-text", "compose-title-field", "compose-desc"]) $(id).addEventListener("input", preview);

let pending = null;

$("compose-form").addEventListener("submit", (event) => {
  event.preventDefault();
  $("compose-sent").textContent = "";
  shown("compose-error", async () => {
    pending = composed();
    let count = pending.count;
    if (count === undefined) {
      const audience = pending.body.Audience ? { Audience: pending.body.Audience } : {};
      count = (await appCallOk("reach", audience)).Count;
    }
    $("confirm-count").textContent = pending.route === "timpush/batch"
      ? `Send to ${count} named accounts?` : `Send to exactly ${count} accounts?`;
    $("confirm").hidden = false;
    $("send").focus();
  });
});

$("cancel").addEventListener("click", () => { $("confirm").hidden = true; pending = null; });

$("send").addEventListener("click", () => shown("compose-error", async () => {
  $("confirm").hidden = true;
  const answer = await api(pending.route, pending.body);
  const failed = errorList(answer);
  $("compose-sent").textContent = `Sent: TaskId ${answer.TaskId}`;
  $("compose-sent").dataset.taskId = answer.TaskId;
  if (failed) throw new Error(`Not sent to ${failed}`);
}));

// ---- Pushes

loaders.pushes = () => shown("pushes-error", async () => {
  const span = lastDays(7);
  const [stats, loss] = await Promise.all([
    api("timpush/all_member_push_statistics", span),
    api("timpush/all_member_push_loss", span),
  ]);
  const failures = new Map(loss.Results.map((r) => [r.TaskID, r.PlatformReadyToSendLoss]));
  $("push-rows").replaceChildren(...stats.Results.slice().reverse()
    .map((task) => pushRow(task, failures.get(task.TaskID) || [])));
});

/** The provider's name for a loss report's `PushPlatform`. */
const PLATFORM_NAMES = { 1: "apns", 2: "fcm", 3: "webpush" };

/** A push's funnel: audience, delivered over the WebSocket when sent and from the backlog
 * later, devices that accepted the notification, and the device failures by reason. */
function pushRow(task, failures) {
  const accepted = task.OfflinePush.Platforms.reduce((t, p) => t + p.Accepted, 0);
  const reasons = failures.map((f) => `${PLATFORM_NAMES[f.PushPlatform]} ${f.ErrCode}: ${f.ErrCount}`);
  const revoke = task.Revoked ? "" : el("button", {
    type: "button", class: "danger", onclick: () => shown("pushes-error", async () => {
      await api("timpush/revoke", { TaskId: task.TaskID });
      await loaders.pushes();
    }),
  }, "Revoke");
  const cell = (className, value) => el("td", { class: className }, String(value));
  return el("tr", { "data-task": task.TaskID },
    el("td", {}, el("code", {}, task.TaskID)), el("td", {}, when(task.TaskTime)), el("td", {}, task.Type),
    cell("audience", task.AudienceCount), cell("at-send", task.DeliveredCount - task.CaughtUpCount),
    cell("caught-up", task.CaughtUpCount), cell("accepted", accepted),
    el("td", { class: "failed" }, reasons.length ? el("ul", {}, ...reasons.map((r) => el("li", {}, r))) : "0"),
    el("td", { class: "state" }, task.Revoked ? "revoked" : "sent"), el("td", {}, revoke));
}

$("pushes-refresh").addEventListener("click", () => loaders.pushes());

function trace() {
  return shown("pushes-error", async () => {
    const answer = await api("timpush/all_member_push_trace", {
      TaskID: $("trace-task").value.trim(), UserID: $("trace-account").value.trim(),
    });
    $("trace").textContent = JSON.stringify(answer.InstanceTrace, null, 2);
  });
}

$("trace-form").addEventListener("submit", (event) => { event.preventDefault(); trace(); });

// ---- Live: a receiver in the page, through the client library

let receiver = null;

$("live-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (receiver) receiver.stop();
  const identifier = $("live-account").value.trim();
  const app = session.current;
  $("live-frames").replaceChildren();
  $("live-error").textContent = "";
  receiver = new TagcastClient({
    url: async () => {
      const answer = await appCallOk("usersig", { Identifier: identifier });
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const query = new URLSearchParams({ sdkappid: app.SdkAppId, identifier, usersig: answer.UserSig });
      return `${scheme}://${location.host}/ws?${query}`;
    },
  });
  receiver.addEventListener("state", (e) => {
    const { state, delay, code, reason } = e.detail;
    $("live-state").textContent = state === "waiting"
      ? `Reconnecting in ${Math.round(delay / 1000)} s (closed: ${code} ${reason || ""})` : `Connection: ${state}`;
    if (state === "waiting" && typeof reason === "string" && /^\d+:/.test(reason)) {
      $("live-error").textContent = reason;
    }
  });
  for (const type of ["connected", "push", "revoke"]) {
    receiver.addEventListener(type, (e) => $("live-frames").prepend(el("li", { class: type },
      el("strong", {}, type), " ", el("code", {}, JSON.stringify(e.detail)))));
  }
  receiver.start();
});

$("live-disconnect").addEventListener("click", () => { if (receiver) receiver.stop(); receiver = null; });

call("GET", "session").then(showSession);
