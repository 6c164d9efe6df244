// Stream states and the one function that moves a stream between them (README "States").
import { ProtocolError } from "./frame.ts";

/** Where a stream stands, seen from one side. */
export enum StreamState {
  Idle = "idle",
  Open = "open",
  /** We sent FIN: we may still receive. */
  HalfClosedLocal = "half-closed-local",
  /** The peer sent FIN: we may still send. */
  HalfClosedRemote = "half-closed-remote",
  Closed = "closed",
}

/** Everything that can happen to a stream. */
export enum StreamEvent {
  SendHeaders = "send-headers",
  RecvHeaders = "recv-headers",
  SendData = "send-data",
  RecvData = "recv-data",
  SendFin = "send-fin",
  RecvFin = "recv-fin",
  SendRst = "send-rst",
  RecvRst = "recv-rst",
}

/** A stream's state plus which directions have sent their HEADERS. */
export interface StreamStatus {
  state: StreamState;
  localHeaders: boolean;
  remoteHeaders: boolean;
}

/** A fresh stream's status. */
export function idleStatus(): StreamStatus {
  return { state: StreamState.Idle, localHeaders: false, remoteHeaders: false };
}

/** Throws for an event the state forbids: ProtocolError when the peer sent it. */
function refuse(state: StreamState, event: StreamEvent, remote: boolean): never {
  const message = `${event} is not allowed on a stream that is ${state}${
    event === StreamEvent.RecvData || event === StreamEvent.SendData ? " before its headers" : ""
  }`;
  throw remote ? new ProtocolError(message) : new Error(message);
}

const canSend = (s: StreamState) => s === StreamState.Open || s === StreamState.HalfClosedRemote;
const canRecv = (s: StreamState) => s === StreamState.Open || s === StreamState.HalfClosedLocal;

/**
 * Applies one event and returns the new status. Receiving what the spec forbids throws
 * ProtocolError; sending what it forbids throws Error (a bug on this side).
 */
export function transition(status: StreamStatus, event: StreamEvent): StreamStatus {
  const { state } = status;
  switch (event) {
    case StreamEvent.SendHeaders:
      if (status.localHeaders || !(state === StreamState.Idle || canSend(state))) refuse(state, event, false);
      return { ...status, localHeaders: true, state: state === StreamState.Idle ? StreamState.Open : state };
    case StreamEvent.RecvHeaders:
      if (status.remoteHeaders || !(state === StreamState.Idle || canRecv(state))) refuse(state, event, true);
      return { ...status, remoteHeaders: true, state: state === StreamState.Idle ? StreamState.Open : state };
    case StreamEvent.SendData:
      if (!status.localHeaders || !canSend(state)) refuse(state, event, false);
      return status;
    case StreamEvent.RecvData:
      if (!status.remoteHeaders || !canRecv(state)) refuse(state, event, true);
      return status;
    case StreamEvent.SendFin:
      if (!status.localHeaders || !canSend(state)) refuse(state, event, false);
      return { ...status, state: state === StreamState.Open ? StreamState.HalfClosedLocal : StreamState.Closed };
    case StreamEvent.RecvFin:
      if (!status.remoteHeaders || !canRecv(state)) refuse(state, event, true);
      return { ...status, state: state === StreamState.Open ? StreamState.HalfClosedRemote : StreamState.Closed };
    case StreamEvent.SendRst:
    case StreamEvent.RecvRst:
      return { ...status, state: StreamState.Closed };
  }
}
