#!/usr/bin/env node
// The `edge-relay` command's entry: the build bundles it into dist/edge-relay.mjs (the package's
// bin); in the repository, agent/bin/edge-relay.mjs runs it through tsx. A config worker
// (agent/config-worker.ts) runs this entry again, to read the --config file instead.
import { main } from "../cli.ts";
import { isConfigWorker, runConfigJob } from "../config-worker.ts";

if (isConfigWorker()) runConfigJob();
else process.exitCode = await main(process.argv.slice(2));
