/**
 * What a bench message carries in its text: who sent it to whom, its number within that pair
 * (1, 2, … in send order) and the sender's clock when sent, so a receiver can measure latency
 * and account for it without asking anyone.
 */
export interface Stamp {
  readonly sender: number
  readonly receiver: number
  readonly k: number
  /** Milliseconds since the epoch, fractional (all processes share this machine's clock). */
  readonly sentAt: number
}

const PREFIX = "bench|"

export const encodeStamp = (stamp: Stamp): string =>
  `${PREFIX}${stamp.sender}|${stamp.receiver}|${stamp.k}|${stamp.sentAt.toFixed(3)}`

export const decodeStamp = (content: string): Stamp | undefined => {
  if (!content.startsWith(PREFIX)) return undefined
  const parts = content.slice(PREFIX.length).split("|")
  if (parts.length !== 4) return undefined
  const [sender, receiver, k, sentAt] = parts.map(Number) as [number, number, number, number]
  if (![sender, receiver, k, sentAt].every(Number.isFinite)) return undefined
  return { sender, receiver, k, sentAt }
}

export const pairKey = (sender: number, receiver: number): string => `${sender}>${receiver}`

/** A clock with sub-millisecond resolution that agrees across processes of one machine. */
export const now = (): number => performance.timeOrigin + performance.now()
