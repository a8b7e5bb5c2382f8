import type { ConversationStore } from "@im/ports/ConversationStore"
import type { FileRecords } from "@im/ports/FileRecords"
import type { FriendStore } from "@im/ports/FriendStore"
import type { GroupStore } from "@im/ports/GroupStore"
import type { HistoryStore } from "@im/ports/HistoryStore"
import type { InboxStore } from "@im/ports/InboxStore"
import type { SeqStore } from "@im/ports/SeqStore"
import type { SessionStore } from "@im/ports/SessionStore"
import type { UserStore } from "@im/ports/UserStore"
import { Layer } from "effect"
import type { SqlClient } from "effect/sql"
import * as SqlFileRecords from "./SqlFileRecords.ts"
import * as SqlFriendStore from "./SqlFriendStore.ts"
import * as SqlConversationStore from "./SqlConversationStore.ts"
import * as SqlGroupStore from "./SqlGroupStore.ts"
import * as SqlHistoryStore from "./SqlHistoryStore.ts"
import * as SqlInboxStore from "./SqlInboxStore.ts"
import * as SqlSeqStore from "./SqlSeqStore.ts"
import * as SqlSessionStore from "./SqlSessionStore.ts"
import * as SqlStoreWrites from "./SqlStoreWrites.ts"
import * as SqlUserStore from "./SqlUserStore.ts"

/** Every store standalone mode keeps in its one (embedded) PostgreSQL. */
export type Storage = UserStore | GroupStore | HistoryStore | ConversationStore | InboxStore | SeqStore | FileRecords | SessionStore | FriendStore

/**
 * All the SQL stores on one SqlClient: what standalone mode runs on. Their writes that go
 * together (Db.save's) run in one transaction (StoreWrites).
 */
export const layer: Layer.Layer<Storage, never, SqlClient.SqlClient> = Layer.mergeAll(
  SqlUserStore.layer,
  SqlGroupStore.layer,
  SqlHistoryStore.layer,
  SqlConversationStore.layer,
  SqlInboxStore.layer,
  SqlSeqStore.layer,
  SqlSessionStore.layer,
  SqlFileRecords.layer,
  SqlFriendStore.layer,
  SqlStoreWrites.layer
)
