// tagcast's browser client for the WebSocket protocol (docs/websocket.md), an ES module with no
// dependencies. It connects as one account, reconnects with backoff and jitter, keeps the
// connection busy enough for proxies, drops pushes it has already seen (by TaskId) and tells
// what happens through events. docs/client.md shows how to use it.

/** The close code of a session replaced by a newer one of its account: never reconnect. */
const REPLACED = 4000;

/**
 * A connection to tagcast's `/ws` that stays up.
 *
 * Events (each a CustomEvent, its `detail` given here):
 * - `connected`: the server's `Connected` frame.
 * - `push`: a `Push` frame whose TaskId was not seen before.
 * - `revoke`: a `Revoke` frame.
 * - `state`: `{ state, attempt, delay, code, reason }`, `state` one of `connecting`, `open`,
 *   `waiting` (to reconnect after `delay` ms), `replaced` (another session of the account took
 *   over: no reconnect), `stopped`.
 */
export class TagcastClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string | (() => string | Promise<string>)} options.url The `ws://…/ws?sdkappid=…`
   *   URL, or a function giving it for each attempt (to fetch a fresh UserSig).
   * @param {number} [options.minDelay=1000] First wait before reconnecting, in ms.
   * @param {number} [options.maxDelay=30000] Longest wait, in ms.
   * @param {number} [options.stableAfter=60000] A session up this long resets the backoff.
   * @param {number} [options.keepalive=25000] How often an empty frame is sent, in ms (0: never).
   * @param {number} [options.remember=1000] How many recent TaskIds are kept to drop repeats.
   */
  constructor(options) {
    super();
    this.options = {
      minDelay: 1000, maxDelay: 30000, stableAfter: 60000, keepalive: 25000, remember: 1000,
      ...options,
    };
    this.seen = new Set();
    this.attempt = 0;
    this.running = false;
    this.socket = null;
    this.timers = [];
  }

  /** Connects, and keeps reconnecting until `stop`. */
  start() {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  /** Closes the connection and stops reconnecting. */
  stop() {
    this.running = false;
    this.clearTimers();
    if (this.socket) this.socket.close(1000, "client stopped");
    this.socket = null;
    this.emit("state", { state: "stopped", attempt: this.attempt });
  }

  async connect() {
    this.emit("state", { state: "connecting", attempt: this.attempt });
    let url;
    try {
      url = typeof this.options.url === "function" ? await this.options.url() : this.options.url;
    } catch (error) {
      this.retry(0, error instanceof Error ? error.message : String(error));
      return;
    }
    if (!this.running) return;
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      this.retry(0, error.message);
      return;
    }
    this.socket = socket;
    let opened = 0;
    socket.addEventListener("open", () => {
      opened = Date.now();
      this.emit("state", { state: "open", attempt: this.attempt });
      if (this.options.keepalive > 0) {
        this.timers.push(setInterval(() => socket.send("{}"), this.options.keepalive));
      }
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.clearTimers();
      if (opened && Date.now() - opened >= this.options.stableAfter) this.attempt = 0;
      if (event.code === REPLACED) {
        this.running = false;
        this.emit("state", { state: "replaced", code: event.code, reason: event.reason });
        return;
      }
      if (this.running) this.retry(event.code, event.reason);
    });
  }

  /** Waits the attempt's backoff (doubling, capped, randomised between half and all). */
  retry(code, reason) {
    const { minDelay, maxDelay } = this.options;
    const ceiling = Math.min(maxDelay, minDelay * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.attempt += 1;
    this.emit("state", { state: "waiting", attempt: this.attempt, delay, code, reason });
    this.timers.push(setTimeout(() => this.running && this.connect(), delay));
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.Type === "Connected") this.emit("connected", frame);
    if (frame.Type === "Revoke") this.emit("revoke", frame);
    if (frame.Type === "Push" && this.isNew(frame.TaskId)) this.emit("push", frame);
  }

  /** Whether `taskId` is new; remembers the most recent `remember` of them. */
  isNew(taskId) {
    if (this.seen.has(taskId)) return false;
    this.seen.add(taskId);
    if (this.seen.size > this.options.remember) {
      this.seen.delete(this.seen.values().next().value);
    }
    return true;
  }

  clearTimers() {
    for (const timer of this.timers) {
      clearTimeout(timer);
      clearInterval(timer);
    }
    this.timers = [];
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
