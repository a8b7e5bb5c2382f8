/**
 * What a bench message carries in its text: who sent it to whom (a user, or a group), its number
 * within that pair (1, 2, … in send order) and the sender's clock when sent, so a receiver can
 * measure latency and account for it without asking anyone.
 */
export interface Stamp {
  readonly sender: number
  /** The receiving user's index, or the group's index when `toGroup`. */
  readonly receiver: number
  /** Sent to a group (`receiver` is then the group's index). */
  readonly toGroup: boolean
  readonly k: number
  /** Milliseconds since the epoch, fractional (all processes share this machine's clock). */
  readonly sentAt: number
}

const PREFIX = "bench|"

export const encodeStamp = (stamp: Stamp): string =>
  `${PREFIX}${stamp.sender}|${stamp.toGroup ? "g" : ""}${stamp.receiver}|${stamp.k}|${stamp.sentAt.toFixed(3)}`

export const decodeStamp = (content: string): Stamp | undefined => {
  if (!content.startsWith(PREFIX)) return undefined
  const parts = content.slice(PREFIX.length).split("|")
  if (parts.length !== 4) return undefined
  const toGroup = parts[1]!.startsWith("g")
  const [sender, receiver, k, sentAt] = [parts[0], toGroup ? parts[1]!.slice(1) : parts[1], parts[2], parts[3]].map((part) =>
    part === "" ? NaN : Number(part)
  ) as [number, number, number, number]
  if (![sender, receiver, k, sentAt].every(Number.isFinite)) return undefined
  return { sender, receiver, toGroup, k, sentAt }
}

/** A one-to-one pair: sender → receiving user. */
export const pairKey = (sender: number, receiver: number): string => `${sender}>${receiver}`

/** A sender's messages to a group: what every other member must get, in this order. */
export const groupPairKey = (sender: number, group: number): string => `${sender}>g${group}`

/** One member's view of a sender's messages to its group. */
export const memberKey = (member: number, pair: string): string => `${member}@${pair}`

/** A clock with sub-millisecond resolution that agrees across processes of one machine. */
export const now = (): number => performance.timeOrigin + performance.now()
