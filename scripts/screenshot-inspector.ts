// Writes docs/inspector.png: the agent's request inspector after a few requests, in headless
// Chromium, with the same relay, backend and agent the inspector's browser test starts.
// Run: npx tsx scripts/screenshot-inspector.ts
import { fileURLToPath } from "node:url";
import { chromiumTool, launchChromium } from "../test/helpers/browser.ts";
import { startInspectedAgent } from "../test/helpers/inspected-agent.ts";

const OUT = fileURLToPath(new URL("../docs/inspector.png", import.meta.url));

const chromium = chromiumTool();
if (chromium.skip) {
  console.error(chromium.skip);
  process.exit(2);
}
const setup = await startInspectedAgent([], "shop");
const browser = await launchChromium(chromium.path!);
try {
  const { page } = await browser.page();
  await page.setViewportSize({ width: 1360, height: 760 });
  await page.goto(`${setup.inspector}/`);
  await page.waitForSelector("body[data-live='1']");
  await setup.send("/status?code=404");
  await setup.send("/bytes?n=20000&type=image/png");
  await setup.send("/echo?page=2", { headers: [["cookie", "session=abc123; theme=dark"]] });
  await setup.send("/api/orders", {
    method: "POST",
    headers: [
      ["content-type", "application/json"],
      ["authorization", "Bearer not-shown-in-the-inspector"],
    ],
    body: JSON.stringify({ item: "widget", qty: 3, gift: true }),
  });
  const row = page.locator("tr.req", { hasText: "/api/orders" });
  await row.locator("td", { hasText: "200" }).waitFor();
  await row.click();
  await page.locator("#response-body").waitFor();
  await page.screenshot({ path: OUT });
  console.log(`wrote ${OUT}`);
} finally {
  await browser.close();
  await setup.stop();
}
