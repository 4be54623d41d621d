// The console's page: signing in and out. Its API is under the console's path (data-base);
// the session is an HttpOnly cookie the page never sees, and each change sends the session's
// CSRF token.
const base = document.querySelector("script[data-base]").dataset.base;

async function call(method, path, body, csrf) {
  const headers = { "Content-Type": "application/json" };
  if (csrf) headers["X-Tagcast-Csrf"] = csrf;
  const response = await fetch(`${base}/api/${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  return response.json();
}

/** "code: text" of a failed answer, as the API gives it. */
function failure(answer) {
  return `${answer.ErrorCode}: ${answer.ErrorInfo}`;
}

function show(answer) {
  const signedIn = answer.ActionStatus === "OK" ? answer.SignedIn : [];
  document.getElementById("signed-in").hidden = signedIn.length === 0;
  const list = document.getElementById("apps");
  list.replaceChildren(...signedIn.map((app) => {
    const item = document.createElement("li");
    item.textContent = `App ${app.SdkAppId} as ${app.Identifier} `;
    const out = document.createElement("button");
    out.type = "button";
    out.textContent = `Sign out of ${app.SdkAppId}`;
    out.addEventListener("click", async () => {
      show(await call("POST", `sign_out?sdkappid=${app.SdkAppId}`, undefined, app.Csrf));
    });
    item.append(out);
    return item;
  }));
}

document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const credential = { [form.kind.value]: form.secret.value };
  const answer = await call("POST", "sign_in", {
    SdkAppId: Number(form.sdkappid.value), Identifier: form.identifier.value, ...credential,
  });
  document.getElementById("sign-in-error").textContent =
    answer.ActionStatus === "OK" ? "" : failure(answer);
  form.secret.value = "";
  if (answer.ActionStatus === "OK") show(answer);
});

call("GET", "session").then(show);
