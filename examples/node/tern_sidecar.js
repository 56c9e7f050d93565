#!/usr/bin/env node
// A client of `tern sidecar` with Node's standard library only (no npm
// packages). It sends messages with idempotency keys, streams incoming
// events (Server-Sent Events), acknowledges them, and resumes after a
// restart without losing or repeating one: each processed event is written
// to the app's own durable record (--db) with its id before it is
// acknowledged, and on start the stream resumes after the highest id
// recorded (Last-Event-ID), which is acknowledged first.
//
//   node tern_sidecar.js --socket STATE/sidecar.sock send --to 2 --text hi --key order-1
//   node tern_sidecar.js --socket STATE/sidecar.sock receive --db inbox.txt --count 10
//   node tern_sidecar.js --url http://127.0.0.1:8080 --token-file STATE/api.token status
"use strict";

const fs = require("fs");
const http = require("http");

class SidecarError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}: ${body.error} (field ${body.field})`);
    this.status = status;
    this.body = body;
  }
}

class Sidecar {
  constructor({ socketPath, url, token }) {
    this.base = socketPath ? { socketPath } : (() => {
      const u = new URL(url);
      return { host: u.hostname, port: Number(u.port || 80) };
    })();
    this.token = token;
  }

  headers(extra = {}) {
    const h = { "content-type": "application/json", ...extra };
    if (this.token) h.authorization = `Bearer ${this.token}`;
    return h;
  }

  request(method, path, body) {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request({ ...this.base, method, path, headers: this.headers() }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          const parsed = text ? JSON.parse(text) : {};
          if (res.statusCode >= 400) reject(new SidecarError(res.statusCode, parsed));
          else resolve(parsed);
        });
      });
      req.on("error", reject);
      req.end(data);
    });
  }

  send(to, text, { conv = 1, key, wait = "queued" } = {}) {
    const body = { to, conv, text };
    if (key) body.idempotency_key = key;
    return this.request("POST", `/v1/messages?wait=${wait}`, body);
  }

  ack(upTo) {
    return this.request("POST", "/v1/events/ack", { up_to: upTo });
  }

  // Calls onEvent(id, type, data) for each event, in order, awaiting it
  // before the next one is read: a slow handler is backpressure.
  stream(lastEventId, onEvent) {
    return new Promise((resolve, reject) => {
      const extra = { accept: "text/event-stream" };
      if (lastEventId) extra["last-event-id"] = String(lastEventId);
      const req = http.request({ ...this.base, method: "GET", path: "/v1/events", headers: this.headers(extra) }, (res) => {
        if (res.statusCode !== 200) return reject(new SidecarError(res.statusCode, {}));
        let buf = "";
        let ev = {};
        let chain = Promise.resolve();
        let done = false;
        const finish = () => { done = true; req.destroy(); resolve(); };
        res.setEncoding("utf8");
        res.on("data", (chunk) => {
          buf += chunk;
          let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, i).replace(/\r$/, "");
            buf = buf.slice(i + 1);
            if (line === "") {
              if (ev.data !== undefined) {
                const e = ev;
                res.pause();
                chain = chain.then(async () => {
                  if (done) return;
                  const stop = await onEvent(e.id ? Number(e.id) : null, e.event, JSON.parse(e.data));
                  if (stop) finish(); else res.resume();
                }).catch((err) => { done = true; req.destroy(); reject(err); });
              }
              ev = {};
            } else if (!line.startsWith(":")) {
              const k = line.split(":", 1)[0];
              let v = line.slice(k.length + 1);
              if (v.startsWith(" ")) v = v.slice(1);
              ev[k] = k === "data" && ev.data !== undefined ? ev.data + "\n" + v : v;
            }
          }
        });
        res.on("end", () => { if (!done) resolve(); });
      });
      req.on("error", (e) => { if (!req.destroyed || e.code !== "ECONNRESET") reject(e); });
      req.end();
    });
  }
}

function lastProcessed(db) {
  if (!fs.existsSync(db)) return { last: 0, messages: 0 };
  const lines = fs.readFileSync(db, "utf8").split("\n").filter((l) => l.trim());
  return { last: Math.max(0, ...lines.map((l) => Number(l.split(" ", 1)[0]))), messages: lines.length };
}

async function receive(sc, { db, count, ackEvery, stopAfter }) {
  let { last, messages } = lastProcessed(db);
  if (last) await sc.ack(last); // processed before a crash, maybe never acknowledged
  console.log(`resuming after event ${last} (${messages} messages processed so far)`);
  const fd = fs.openSync(db, "a");
  let processed = 0;
  await sc.stream(last, async (id, type, data) => {
    if (type === "reset") { console.log("the server's inbox started again"); return false; }
    if (type === "message") {
      fs.writeSync(fd, `${id} ${data.text ?? ""}\n`);
      fs.fsyncSync(fd);
      messages += 1;
    }
    processed += 1;
    if (stopAfter && processed >= stopAfter) {
      console.log(`stopping abruptly after ${processed} events (last ${id})`);
      process.exit(3);
    }
    if (processed % ackEvery === 0 || messages >= count) await sc.ack(id);
    return messages >= count;
  });
  fs.closeSync(fd);
  console.log(`received ${messages} messages`);
}

function parseArgs(argv) {
  const opts = {};
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) opts[argv[i].slice(2)] = argv[++i];
    else rest.push(argv[i]);
  }
  return { opts, cmd: rest[0] };
}

async function main() {
  const { opts, cmd } = parseArgs(process.argv.slice(2));
  if (!opts.socket && !opts.url) throw new Error("give --socket PATH or --url http://127.0.0.1:PORT");
  const token = opts["token-file"] ? fs.readFileSync(opts["token-file"], "utf8").trim() : undefined;
  const sc = new Sidecar({ socketPath: opts.socket, url: opts.url, token });
  if (cmd === "send") {
    const n = Number(opts.count || 0);
    const texts = n ? [...Array(n).keys()].map((i) => `${opts.text}${i}`) : [opts.text];
    for (const [i, t] of texts.entries()) {
      const key = opts.key ? (n ? `${opts.key}${i}` : opts.key) : undefined;
      console.log(JSON.stringify(await sc.send(Number(opts.to), t, { conv: Number(opts.conv || 1), key, wait: opts.wait })));
    }
  } else if (cmd === "receive") {
    await receive(sc, {
      db: opts.db,
      count: Number(opts.count),
      ackEvery: Number(opts["ack-every"] || 1),
      stopAfter: Number(opts["stop-after"] || 0),
    });
  } else if (cmd === "status") {
    console.log(JSON.stringify(await sc.request("GET", "/v1/status")));
  } else {
    throw new Error("commands: send, receive, status");
  }
}

main().catch((e) => { console.error(`error: ${e.message}`); process.exit(1); });
