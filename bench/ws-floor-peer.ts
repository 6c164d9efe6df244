// The ws-floor row's peer (bench/ws-floor.ts): a WebSocket to the backend's object that echoes the
// request ids it gets, those of one event-loop turn in one message, as the agent batches answers.
import type WebSocket from "ws";
import { closeWs, openWs } from "./ws.ts";

/** Connects the peer to `url` (ws://.../_relay/bench/<name>/floor-peer); resolves once it is open. */
export async function startFloorPeer(url: string): Promise<{ stop(): Promise<void> }> {
  const ws: WebSocket = await openWs(url);
  let turn: Buffer[] = [];
  ws.on("error", () => {}); // the close follows; the object answers what waits with 502
  ws.on("message", (data: Buffer) => {
    if (turn.push(data) > 1) return;
    setImmediate(() => {
      const ids = turn.length === 1 ? turn[0] : Buffer.concat(turn);
      turn = [];
      ws.send(ids);
    });
  });
  return { stop: () => closeWs(ws) };
}
