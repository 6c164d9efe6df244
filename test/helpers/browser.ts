// Headless Debian Chromium driven by playwright-core, for pages a person would look at (the
// login flow, the inspector, the dashboard). Missing Chromium skips those tests with the
// apt-get line, except under CI=true (see tools.ts).
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { type Tool, tool } from "./tools.ts";

/** Debian's Chromium, or the reason the browser tests skip. */
export function chromiumTool(): Tool {
  return tool("/usr/bin/chromium", "chromium");
}

/**
 * Flags that keep Chromium off the network: this machine reaches loopback only, and without
 * them Chromium opens background connections that the closed network refuses.
 */
const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

export interface Chromium {
  browser: Browser;
  /** A fresh context (its own cookies) and a page in it. */
  page(options?: { ignoreHTTPSErrors?: boolean }): Promise<{ context: BrowserContext; page: Page }>;
  close(): Promise<void>;
}

/** Starts Chromium at `path` (from `chromiumTool()`); playwright gives it a throwaway profile. */
export async function launchChromium(path: string): Promise<Chromium> {
  const browser = await chromium.launch({ executablePath: path, args: [...CHROMIUM_ARGS], timeout: 60_000 });
  return {
    browser,
    async page(options) {
      const context = await browser.newContext({ ignoreHTTPSErrors: options?.ignoreHTTPSErrors ?? false });
      return { context, page: await context.newPage() };
    },
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/** Where tests save screenshots a person would look at: test-output/screenshots/<name>.png. */
export async function screenshotPath(name: string): Promise<string> {
  const path = join(process.cwd(), "test-output", "screenshots", `${name}.png`);
  await mkdir(dirname(path), { recursive: true });
  return path;
}
