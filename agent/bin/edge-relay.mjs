#!/usr/bin/env node
// The `edge-relay` command: loads the TypeScript agent through tsx so no build step is needed.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../cli.ts");
process.exitCode = await main(process.argv.slice(2));
