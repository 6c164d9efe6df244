// The built-in `resp` bridge plugin: an HTTP API for Redis. POST a JSON command array
// (["SET","k","v"]) and get the reply as JSON; an array of command arrays is a pipeline and
// gets an array of replies. docs/targets.md "Bridging HTTP to a TCP protocol" documents the mapping.
import type { BridgeContext, BridgePlugin } from "./plugin.ts";
import { encodeCommand, RespDecoder, RespErrorReply, type RespReply } from "./resp-codec.ts";

/** Status for a single command that Redis answered with an error reply. */
export const REDIS_ERROR_STATUS = 422;

/** Commands whose replies are not one per command, or that change the protocol. */
const UNSUPPORTED = new Set(["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "SYNC", "PSYNC", "HELLO"]);
const JSON_TYPE = { "content-type": "application/json; charset=utf-8" };
const utf8 = new TextDecoder("utf-8", { fatal: true });

interface RespState {
  decoder: RespDecoder;
  expected: number;
  pipeline: boolean;
  replies: RespReply[];
}

/** The commands of a request body, or why it is not one. */
export type ParsedCommands = { commands: string[][]; pipeline: boolean } | { error: string };

/** Reads a body: a JSON array of strings and numbers (one command), or an array of those (a pipeline). */
export function parseCommands(body: Uint8Array): ParsedCommands {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(body));
  } catch (err) {
    if (body.byteLength === 0) return { error: 'The body is empty; send a JSON command array like ["GET","key"].' };
    return {
      error: `The body is not JSON (${err instanceof Error ? err.message : String(err)}); send a command array like ["GET","key"].`,
    };
  }
  if (!Array.isArray(value) || value.length === 0) {
    return { error: 'The body must be a non-empty JSON array: a command like ["GET","key"], or an array of commands.' };
  }
  const pipeline = value.every(Array.isArray);
  if (!pipeline && value.some(Array.isArray))
    return { error: "The body mixes commands and arguments: send one command array, or an array of command arrays." };
  const list = (pipeline ? value : [value]) as unknown[][];
  const commands: string[][] = [];
  for (const [i, command] of list.entries()) {
    const which = pipeline ? `command ${i + 1}` : "the command";
    if (command.length === 0) return { error: `${which[0].toUpperCase()}${which.slice(1)} is empty.` };
    const args: string[] = [];
    for (const [j, arg] of command.entries()) {
      if (typeof arg === "string") args.push(arg);
      else if (typeof arg === "number" && Number.isFinite(arg)) args.push(String(arg));
      else
        return { error: `Argument ${j + 1} of ${which} is ${arg === null ? "null" : typeof arg}; arguments must be strings or numbers.` };
    }
    const name = args[0].toUpperCase();
    if (UNSUPPORTED.has(name)) {
      return {
        error: `${name} is not available over the HTTP bridge (its replies are not one per command); reach Redis through a tcp:// target and \`edge-relay connect\` instead.`,
      };
    }
    commands.push(args);
  }
  return { commands, pipeline };
}

/** A reply as JSON: errors as {error, message}, integers past 2^53 and non-UTF-8 bulk strings as strings and {base64}. */
export function replyToJson(reply: RespReply): unknown {
  if (reply === null || typeof reply === "string" || typeof reply === "number") return reply;
  if (typeof reply === "bigint") return reply.toString();
  if (reply instanceof RespErrorReply) return { error: "redis_error", message: reply.message };
  if (Array.isArray(reply)) return reply.map(replyToJson);
  try {
    return utf8.decode(reply);
  } catch {
    return { base64: toBase64(reply) };
  }
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.byteLength; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function json(ctx: BridgeContext<RespState>, status: number, value: unknown, extra: Record<string, string> = {}): "end" {
  ctx.respond(status, { ...JSON_TYPE, ...extra }, JSON.stringify(value));
  return "end";
}

const resp: BridgePlugin<RespState> = {
  name: "resp",

  encodeHeaders(request, ctx) {
    if (request.method !== "POST") {
      return json(ctx, 405, { error: "method_not_allowed", message: 'POST a JSON command array, like ["GET","key"].' }, { allow: "POST" });
    }
    return "buffer";
  },

  encodeData(body, _endOfStream, ctx) {
    const parsed = parseCommands(body);
    if ("error" in parsed) return json(ctx, 400, { error: "bad_request", message: parsed.error });
    ctx.state = { decoder: new RespDecoder(), expected: parsed.commands.length, pipeline: parsed.pipeline, replies: [] };
    const encoded = parsed.commands.map(encodeCommand);
    const bytes = new Uint8Array(encoded.reduce((n, c) => n + c.byteLength, 0));
    encoded.reduce((at, c) => (bytes.set(c, at), at + c.byteLength), 0);
    ctx.write(bytes);
    return "end";
  },

  onUpstreamData(chunk, endOfStream, ctx) {
    const state = ctx.state;
    for (const reply of state.decoder.push(chunk)) state.replies.push(reply);
    if (state.replies.length >= state.expected) {
      const replies = state.replies.slice(0, state.expected);
      if (state.pipeline) return json(ctx, 200, replies.map(replyToJson));
      const [reply] = replies;
      return json(ctx, reply instanceof RespErrorReply ? REDIS_ERROR_STATUS : 200, replyToJson(reply));
    }
    if (endOfStream) throw new Error(`Redis closed the connection after ${state.replies.length} of ${state.expected} replies`);
    return "continue";
  },
};

export default resp;
