// Writes docs/dashboard.png: the relay dashboard with two backends and live traffic, made with
// the browser test's own scene (test/helpers/dashboard.ts). `npx tsx scripts/screenshot-dashboard.ts`
import { fileURLToPath } from "node:url";
import { chromiumTool, launchChromium } from "../test/helpers/browser.ts";
import { signIn, startDashboardScene, waitForRates } from "../test/helpers/dashboard.ts";

const OUT = fileURLToPath(new URL("../docs/dashboard.png", import.meta.url));

const chromium = chromiumTool();
if (!chromium.path) throw new Error(chromium.skip);
const [scene, browser] = await Promise.all([startDashboardScene(), launchChromium(chromium.path)]);
try {
  const { page } = await browser.page();
  await page.setViewportSize({ width: 1100, height: 560 });
  await signIn(page, scene);
  await waitForRates(page, scene);
  await page.screenshot({ path: OUT });
  console.log(`wrote ${OUT}`);
} finally {
  await browser.close();
  await scene.stop();
}
