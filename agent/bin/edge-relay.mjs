#!/usr/bin/env node
// The `edge-relay` command inside the repository: runs the TypeScript sources through tsx (a dev
// dependency), so edits need no build. The package ships dist/edge-relay.mjs instead (`npm run build`).
import { register } from "tsx/esm/api";

register();
await import("./edge-relay.ts");
