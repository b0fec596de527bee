// Renders Latchkey's pages in headless Chromium (Debian's /usr/bin/chromium) at desktop and
// phone widths and writes PNGs to docs/screenshots/. Usage (from the repo root):
//   cargo build --release && (cd scripts/screenshots && npm install && node shoot.mjs)
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "../..");
const bin = join(root, "target/release/latchkey");
const out = join(root, "docs/screenshots");
mkdirSync(out, { recursive: true });
const data = mkdtempSync(join(tmpdir(), "latchkey-shots-"));
const port = 18600 + Math.floor(Math.random() * 300);
const base = `http://127.0.0.1:${port}`;
const env = { ...process.env, LATCHKEY_DATA_DIR: join(data, "data"), LATCHKEY_LOG: "warn", LATCHKEY_BIND: `127.0.0.1:${port}` };

execFileSync(bin, ["scope", "create", "manage_payment", "--description", "Take payments on your behalf"], { env });
const server = spawn(bin, ["serve"], { env, stdio: "inherit" });
const ready = async () => {
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${base}/healthz`)).ok) return; } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("server did not start");
};

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const widths = { desktop: { width: 1280, height: 860 }, phone: { width: 390, height: 844 } };

try {
  await ready();
  for (const [size, viewport] of Object.entries(widths)) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const shot = (name) => page.screenshot({ path: join(out, `${name}-${size}.png`), fullPage: true });

    await page.goto(`${base}/login`);
    await shot("login");

    await page.goto(`${base}/signup`);
    await page.fill("#username", `acme${size}`);
    await page.fill("#name", "Acme Sdn Bhd");
    await page.fill("#email", `acme-${size}@example.com`);
    await page.fill("#password", "a long password 1");
    await page.click("main button[type=submit]");
    await page.waitForURL(/developer\/applications/);
    await shot("applications-empty");

    await page.goto(`${base}/developer/applications/new`);
    await page.fill("#name", "Acme Shop");
    await page.fill("#home_page_url", "shop.example.com");
    await page.fill("#redirect_uris", "https://shop.example.com/callback#done");
    await page.click("main button[type=submit]");
    await shot("create-errors");

    await page.fill("#home_page_url", "https://shop.example.com");
    await page.fill("#privacy_policy_url", "https://shop.example.com/privacy");
    await page.fill("#redirect_uris", "https://shop.example.com/callback");
    await page.click("main button[type=submit]");
    await page.waitForURL(/applications\/\d+$/);
    await shot("application-detail");

    await page.goto(`${base}/developer/applications`);
    await shot("applications");
    await context.close();
  }
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
console.log(`screenshots written to ${out}`);
