// Two headless Chromium pages on the demo chat page of two Nova instances (NOVA_A, NOVA_B):
// messages flow both ways; one page goes offline while the other sends, comes back, and shows
// each message once, in order. Screenshots go to ARTIFACTS. Run by systemtest/demo_e2e_test.go.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";

const { NOVA_A, NOVA_B, ARTIFACTS = "artifacts" } = process.env;
mkdirSync(ARTIFACTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const timeout = 15_000;
try {
  const a = await (await browser.newContext()).newPage();
  const bContext = await browser.newContext();
  const b = await bContext.newPage();
  const user = `u${Date.now()}`; // fresh test users for each run
  await a.goto(`${NOVA_A}/demo/?user=alice-${user}`);
  await b.goto(`${NOVA_B}/demo/?user=bob-${user}`);
  await a.fill("#peer", `bob-${user}`);
  await a.click("#start");
  await b.waitForSelector(".conv.open", { timeout }); // bob's list shows it and opens it

  const seqs = (page) => page.$$eval("#messages li", (lis) => lis.map((li) => [Number(li.dataset.seq), li.textContent.replace(/^#\d+/, "")]));
  const say = async (page, text) => { await page.fill("#text", text); await page.press("#text", "Enter"); };
  const waitCount = (page, n) => page.waitForFunction((n) => document.querySelectorAll("#messages li").length >= n, n, { timeout });

  // messages flow both ways
  await say(a, "hello from alice");
  await waitCount(b, 1);
  await say(b, "hello from bob");
  await waitCount(a, 2);
  await a.screenshot({ path: `${ARTIFACTS}/demo-alice.png` });

  // bob goes offline; alice sends three; bob comes back and catches up. (Chromium's offline
  // emulation does not cut WebSockets, so the page's client is stopped and started again, as a
  // lost network would make it disconnect and reconnect.)
  await bContext.setOffline(true);
  await b.evaluate(() => window.novaDemo.client.stop());
  await b.waitForSelector("#banner.offline", { timeout });
  await b.screenshot({ path: `${ARTIFACTS}/demo-bob-offline.png` });
  for (const t of ["while you were away 1", "while you were away 2", "while you were away 3"]) await say(a, t);
  await bContext.setOffline(false);
  await b.evaluate(() => window.novaDemo.client.start());
  await waitCount(b, 5);
  await b.waitForFunction(() => !document.querySelector("#banner").classList.contains("offline"), null, { timeout });
  await new Promise((r) => setTimeout(r, 500)); // nothing more comes
  await b.screenshot({ path: `${ARTIFACTS}/demo-bob-back.png` });

  const got = await seqs(b);
  assert.deepEqual(got.map(([s]) => s), [1, 2, 3, 4, 5], `bob's page shows ${JSON.stringify(got)}`);
  assert.deepEqual(got.map(([, t]) => t), ["hello from alice", "hello from bob", "while you were away 1", "while you were away 2", "while you were away 3"]);
  console.log("demo e2e: both pages in order, each message once:", JSON.stringify(got));
} finally {
  await browser.close();
}
