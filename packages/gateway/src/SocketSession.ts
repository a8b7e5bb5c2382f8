import { CloseCodes } from "@im/domain/Frames"
import type { SessionId, UserId } from "@im/domain/Ids"
import type { WebSocketHandler } from "@im/platform/HttpServer"
import { Cause, Effect } from "effect"
import type { Gateway, Session } from "./Gateway.ts"

/**
 * The frames waiting for their sockets on one gateway, written in one go for all sessions.
 *
 * A fiber per session taking from its own queue cost several KB per idle connection (the fiber,
 * its scope, context and closures) for a queue that is empty nearly all the time. Writing to a
 * `ws` socket is synchronous (it buffers), so one writer for the gateway keeps every property the
 * per-session writers had: a session's frames go out in the order they were offered, offering
 * never blocks, and up to `capacity` frames may wait for a session before it counts as too slow.
 */
export class Outbox {
  private ready: Array<SocketSession> = []
  private flushQueued = false

  readonly capacity: number

  constructor(capacity: number) {
    this.capacity = capacity
  }

  /**
   * Called by a session whose queue just went from empty to non-empty. The frames are written
   * in a microtask, once the code offering frames has run to its end: writing here, inside the
   * offer, would send every frame of a delivery on its own instead of each socket's frames
   * together (one write for them all, see `@im/platform/HttpServer`).
   */
  schedule(session: SocketSession): void {
    this.ready.push(session)
    if (this.flushQueued) return
    this.flushQueued = true
    queueMicrotask(this.flush)
  }

  private readonly flush = (): void => {
    this.flushQueued = false
    const ready = this.ready
    this.ready = []
    for (const session of ready) session.flush()
  }
}

/** What a session needs of its WebSocket: a `CoalescingWebSocket`, or a double in tests. */
export interface SessionSocket {
  /** Sends the frames in order, in one write. */
  sendAll(frames: ReadonlyArray<string>): void
  /** Sends a close frame; the socket closes once the peer answers (or `ws` gives up on it). */
  close(code: number, reason: string): void
  /** Bytes sent to the socket that the connection has not taken yet. */
  readonly bufferedAmount: number
  /** Stops reading the peer's frames (they wait in the connection, and then in the peer). */
  pause(): void
  /** Reads them again. */
  resume(): void
}

/**
 * Frames from the peer waiting for their answer beyond which the socket is not read: a client
 * streaming frames while one waits for chat is held back by TCP instead of filling the heap
 * (at most this many frames of WS_MAX_FRAME_BYTES each, and what `ws` had already parsed).
 */
export const MAX_UNANSWERED_FRAMES = 16

/**
 * Bytes written to a socket and not yet taken by the connection beyond which its client is too
 * slow: the queue of WS_SEND_QUEUE frames empties into the socket at every write, so a reader
 * that stopped reading would otherwise grow the socket's buffer without bound.
 */
export const MAX_UNSENT_BYTES = 8 * 1024 * 1024

/**
 * One open WebSocket of a user, as the gateway sees it. A class rather than an object of
 * closures: its methods live on the prototype, so an idle session is a handful of fields, and
 * no fiber: the socket's events call its methods (`WebSocketHandler`), and a fiber of the
 * gateway runs only while frames from the peer are being answered.
 */
export class SocketSession implements Session, WebSocketHandler {
  /** When a frame last arrived from the peer (epoch ms); the gateway's heartbeat sweep reads it. */
  lastSeen: number
  readonly id: string
  readonly user: UserId
  readonly sid: SessionId
  /** Frames waiting for the outbox; undefined when none are (most of an idle session's life). */
  private queued: Array<string> | undefined = undefined
  private ended = false
  /**
   * Frames from the peer not answered yet, while a fiber answers them (undefined: none is):
   * frames are answered one at a time, in order, a send's result before the next frame.
   */
  private inbox: Array<string | Uint8Array> | undefined = undefined
  private readonly socket: SessionSocket
  protected readonly gateway: Gateway["Service"]

  constructor(id: string, user: UserId, sid: SessionId, socket: SessionSocket, gateway: Gateway["Service"], now: number) {
    this.id = id
    this.user = user
    this.sid = sid
    this.socket = socket
    this.gateway = gateway
    this.lastSeen = now
  }

  /** For logs: who and which socket. */
  get annotations(): { readonly user: UserId; readonly session: string } {
    return { user: this.user, session: this.id }
  }

  /**
   * Queues a frame; false when `WS_SEND_QUEUE` frames are already waiting, or the socket holds
   * MAX_UNSENT_BYTES not yet sent (a too-slow client).
   */
  offer(frame: string): boolean {
    if (this.ended) return true
    if (this.socket.bufferedAmount > MAX_UNSENT_BYTES) return false
    const queued = this.queued
    if (queued === undefined) {
      this.queued = [frame]
      this.gateway.outbox.schedule(this)
      return true
    }
    if (queued.length >= this.gateway.outbox.capacity) return false
    queued.push(frame)
    return true
  }

  /** Writes the queued frames (the outbox calls it). A socket that fails to take them is closing. */
  flush(): void {
    const frames = this.queued
    if (frames === undefined || this.ended) return
    this.queued = undefined
    try {
      this.socket.sendAll(frames)
    } catch {
      // A closing socket drops what it is sent; nothing else is expected to throw.
    }
  }

  /** Sends a close frame at once; the session ends when the socket has closed. */
  close(code: number, reason: string): Effect.Effect<void> {
    return Effect.sync(() => this.closeSocket(code, reason))
  }

  private closeSocket(code: number, reason: string): void {
    if (this.ended) return
    try {
      this.socket.close(code, reason)
    } catch {
      // `ws` refuses only codes and reasons it cannot send; ours are all valid.
    }
  }

  /**
   * Ends the session now (drops what is queued, takes no more frames) and returns its detaching
   * from the gateway (and Presence), to run. Once only: a closed socket, the heartbeat sweep or
   * a failed start ends it.
   */
  end(): Effect.Effect<void> {
    if (this.ended) return Effect.void
    this.ended = true
    this.queued = undefined
    this.inbox = undefined
    return this.gateway.detach(this)
  }

  /**
   * Closes a silent session (4008) and ends it at once, without waiting for a dead peer to
   * answer the close handshake: the session then detaches and leaves Presence.
   */
  get expire(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.closeSocket(CloseCodes.heartbeatTimeout, "heartbeat timeout")
      return this.end()
    }).pipe(
      Effect.andThen(Effect.logInfo("heartbeat timeout")),
      Effect.annotateLogs(this.annotations)
    )
  }

  /**
   * Ends a session whose start failed or was interrupted: closes the socket (1011, or 1001 for
   * an interruption) and detaches.
   */
  abandon(cause: Cause.Cause<unknown>): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.closeSocket(Cause.hasInterruptsOnly(cause) ? 1001 : 1011, "")
      return this.end()
    })
  }

  /** Answers one frame from the peer; sessions that read frames override it. */
  answer(_frame: string | Uint8Array): Effect.Effect<void> {
    return Effect.void
  }

  /**
   * Answers at once a frame that needs no fiber (a heartbeat), when no frame waits before it;
   * true when it did. Sessions that read frames override it.
   */
  protected answerAtOnce(_data: Buffer): boolean {
    return false
  }

  onMessage(data: Buffer, isBinary: boolean): void {
    if (this.ended) return
    this.lastSeen = this.gateway.now()
    if (this.inbox === undefined && !isBinary && this.answerAtOnce(data)) return
    const frame = isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data.toString()
    if (this.inbox !== undefined) {
      this.inbox.push(frame)
      if (this.inbox.length === MAX_UNANSWERED_FRAMES) this.socket.pause()
      return
    }
    this.inbox = [frame]
    this.gateway.run(answerInbox(this))
  }

  onClose(code: number, _reason: Buffer): void {
    if (this.ended) return
    this.gateway.run(this.end().pipe(
      Effect.andThen(Effect.logDebug("session closed", { code })),
      Effect.annotateLogs(this.annotations)
    ))
  }

  onError(error: Error): void {
    this.gateway.run(Effect.logInfo("session ended", error).pipe(Effect.annotateLogs(this.annotations)))
  }

  /** The frames to answer next, or undefined once there are none (the answering fiber ends). */
  takeInbox(): ReadonlyArray<string | Uint8Array> | undefined {
    const frames = this.inbox
    if (frames === undefined || frames.length === 0) {
      this.inbox = undefined
      return undefined
    }
    this.inbox = []
    if (frames.length >= MAX_UNANSWERED_FRAMES) this.socket.resume()
    return frames
  }
}

/** Answers a session's frames, in order, until none is waiting. A defect ends the session (1011). */
const answerInbox = (session: SocketSession): Effect.Effect<void> =>
  Effect.gen(function*() {
    let frames: ReadonlyArray<string | Uint8Array> | undefined
    while ((frames = session.takeInbox()) !== undefined) {
      for (const frame of frames) yield* session.answer(frame)
    }
  }).pipe(Effect.catchCause((cause) =>
    Effect.logError("answering a frame failed", cause).pipe(
      Effect.andThen(session.abandon(cause)),
      Effect.annotateLogs(session.annotations)
    )
  ))
