import type { GroupStore } from "@im/ports/GroupStore"
import type { HistoryStore } from "@im/ports/HistoryStore"
import type { InboxStore } from "@im/ports/InboxStore"
import type { SeqStore } from "@im/ports/SeqStore"
import type { UserStore } from "@im/ports/UserStore"
import { Layer } from "effect"
import type { SqlClient } from "effect/sql"
import * as SqlGroupStore from "./SqlGroupStore.ts"
import * as SqlHistoryStore from "./SqlHistoryStore.ts"
import * as SqlInboxStore from "./SqlInboxStore.ts"
import * as SqlSeqStore from "./SqlSeqStore.ts"
import * as SqlUserStore from "./SqlUserStore.ts"

/** Every store standalone mode keeps in its one (embedded) PostgreSQL. */
export type Storage = UserStore | GroupStore | HistoryStore | InboxStore | SeqStore

/** All the SQL stores on one SqlClient: what standalone mode runs on. */
export const layer: Layer.Layer<Storage, never, SqlClient.SqlClient> = Layer.mergeAll(
  SqlUserStore.layer,
  SqlGroupStore.layer,
  SqlHistoryStore.layer,
  SqlInboxStore.layer,
  SqlSeqStore.layer
)
