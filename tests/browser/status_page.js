// Loads ternd's status page in a real headless Chromium (Debian's, driven
// by playwright-core; no browser is downloaded) and checks that it works:
// it reaches "live", its figures move between two readings a few seconds
// apart while the test drives traffic, nothing it needs comes from
// elsewhere, and it takes a screenshot.
//
//   node status_page.js URL SCREENSHOT.png
// Prints one JSON line with what it read; exits 1 with the reason if a
// check fails.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, shot] = process.argv.slice(2);
const fail = (msg) => { console.error("status page check failed: " + msg); process.exit(1); };

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tern-chromium-"));
  // A new, empty profile (what --user-data-dir gives Chromium).
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1200, height: 780 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage();
    const foreign = [];
    const origin = new URL(url).origin;
    page.on("request", (r) => { if (!r.url().startsWith(origin)) foreign.push(r.url()); });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById("state").textContent === "live", null, { timeout: 15000 });
    const read = () => page.evaluate(() => {
      const t = (id) => document.getElementById(id).textContent;
      const num = (s) => { const m = s.replace(/,/g, "").match(/[\d.]+[kM]?/); if (!m) return NaN; const v = parseFloat(m[0]); return m[0].endsWith("M") ? v * 1e6 : m[0].endsWith("k") ? v * 1e3 : v; };
      return {
        sessions: num(t("sessions")), stored: num(t("stored")), fsyncs: num(t("fsyncs")),
        msgRate: num(t("msg-rate")), fsyncRate: num(t("fsync-rate")), batch: t("batch"),
        store: t("store"), bars: document.querySelectorAll("#hist .bar").length, hist: t("hist-sub"),
      };
    });
    await page.waitForTimeout(2500);
    const first = await read();
    await page.waitForTimeout(3000);
    const second = await read();
    if (!(second.stored > first.stored)) fail(`stored did not move: ${first.stored} -> ${second.stored}`);
    if (!(second.fsyncs > first.fsyncs)) fail(`fsyncs did not move: ${first.fsyncs} -> ${second.fsyncs}`);
    if (!(second.msgRate > 0)) fail(`message rate is ${second.msgRate}`);
    if (!(second.fsyncRate > 0)) fail(`fsync rate is ${second.fsyncRate}`);
    if (!(second.sessions >= 1)) fail(`sessions online: ${second.sessions}`);
    if (second.bars < 5) fail(`latency histogram has ${second.bars} bars`);
    if (foreign.length) fail(`requests left the daemon: ${foreign.join(", ")}`);
    if (errors.length) fail(`script errors: ${errors.join("; ")}`);
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify({ first, second }));
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => fail(e.stack || String(e)));
