import { CloseCodes } from "@im/domain/Frames"
import type { SessionId, UserId } from "@im/domain/Ids"
import { Effect, Fiber, Latch } from "effect"
import * as Socket from "effect/socket/Socket"
import type { Session } from "./Gateway.ts"

/** The longest a close frame may wait for its socket. */
const CLOSE_WRITE_TIMEOUT = "1 second"

/**
 * The frames waiting for their sockets on one gateway, written by one fiber for all sessions.
 *
 * A fiber per session taking from its own queue cost several KB per idle connection (the fiber,
 * its scope, context and closures) for a queue that is empty nearly all the time. Writing to a
 * `ws` socket is synchronous (it buffers), so one writer for the gateway keeps every property the
 * per-session writers had: a session's frames go out in the order they were offered, offering
 * never blocks, and up to `capacity` frames may wait for a session before it counts as too slow.
 */
export class Outbox {
  private ready: Array<SocketSession> = []
  private readonly wake = Latch.makeUnsafe(false)
  private wakeQueued = false

  readonly capacity: number

  constructor(capacity: number) {
    this.capacity = capacity
  }

  /**
   * Called by a session whose queue just went from empty to non-empty. The writer wakes in a
   * microtask, once the code offering frames has run to its end: opening the latch here would
   * run the writer at once, inside the offer, and every frame of a delivery would go out on its
   * own instead of each socket's frames together (one write for them all, see
   * `@im/platform/HttpServer`).
   */
  schedule(session: SocketSession): void {
    this.ready.push(session)
    if (this.wakeQueued) return
    this.wakeQueued = true
    queueMicrotask(this.wakeUp)
  }

  private readonly wakeUp = (): void => {
    this.wakeQueued = false
    this.wake.openUnsafe()
  }

  /** Writes the frames of every session that has some, whenever there are some; runs forever. */
  readonly run: Effect.Effect<never> = Effect.gen({ self: this }, function*() {
    while (true) {
      yield* this.wake.await
      this.wake.closeUnsafe()
      const ready = this.ready
      this.ready = []
      for (const session of ready) yield* session.flush
    }
  })
}

/**
 * One open WebSocket of a user, as the gateway sees it. A class rather than an object of
 * closures: its methods live on the prototype, so an idle session is a handful of fields.
 */
export class SocketSession implements Session {
  /** When a frame last arrived from the peer (epoch ms); the gateway's heartbeat sweep reads it. */
  lastSeen: number
  /** The fiber reading the socket; interrupting it ends the session. Set once reading starts. */
  reading: Fiber.Fiber<unknown, unknown> | undefined = undefined
  readonly id: string
  readonly user: UserId
  readonly sid: SessionId
  private queued: Array<string> = []
  private ended = false
  private readonly writer: Socket.Writer
  private readonly outbox: Outbox

  constructor(id: string, user: UserId, sid: SessionId, writer: Socket.Writer, outbox: Outbox, now: number) {
    this.id = id
    this.user = user
    this.sid = sid
    this.writer = writer
    this.outbox = outbox
    this.lastSeen = now
  }

  /** Queues a frame; false when `WS_SEND_QUEUE` frames are already waiting (a too-slow client). */
  offer(frame: string): boolean {
    if (this.ended) return true
    const queued = this.queued
    if (queued.length >= this.outbox.capacity) return false
    queued.push(frame)
    // After the push: scheduling can run the outbox's fiber at once, which takes the frames.
    if (queued.length === 1) this.outbox.schedule(this)
    return true
  }

  /**
   * Drops what is queued and takes no more frames. Called before the socket's reader is released:
   * effect's writer then waits for the socket to open again, which would stall the outbox.
   */
  end(): void {
    this.ended = true
    this.queued = []
  }

  /** Writes the queued frames (the outbox calls it). A socket that fails to take them is closing. */
  get flush(): Effect.Effect<void> {
    const frames = this.queued
    if (frames.length === 0 || this.ended) return Effect.void
    this.queued = []
    return Effect.ignore(this.writer.writeAll(frames as [string, ...Array<string>]))
  }

  /**
   * Sends a close frame. Never waits long: a socket that is closing already (its peer left while
   * the gateway shuts down, say) makes effect's writer wait for a reopening, and one such socket
   * held the whole shutdown for ever.
   */
  close(code: number, reason: string): Effect.Effect<void> {
    if (this.ended) return Effect.void
    return this.writer.write(new Socket.CloseEvent(code, reason)).pipe(Effect.timeout(CLOSE_WRITE_TIMEOUT), Effect.ignore)
  }

  /**
   * Closes a silent session (4008) and ends it at once, without waiting for a dead peer to
   * answer the close handshake: the session then detaches and leaves Presence.
   */
  get expire(): Effect.Effect<void> {
    const reading = this.reading
    return this.close(CloseCodes.heartbeatTimeout, "heartbeat timeout").pipe(
      Effect.andThen(reading === undefined ? Effect.void : Fiber.interrupt(reading)),
      Effect.andThen(Effect.logInfo("heartbeat timeout")),
      Effect.annotateLogs({ user: this.user, session: this.id })
    )
  }
}
