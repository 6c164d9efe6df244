#!/usr/bin/env node
// The `edge-relay` command's entry: the build bundles it into dist/edge-relay.mjs (the package's
// bin); in the repository, agent/bin/edge-relay.mjs runs it through tsx.
import "../ws-mask.ts";
import { main } from "../cli.ts";

process.exitCode = await main(process.argv.slice(2));
