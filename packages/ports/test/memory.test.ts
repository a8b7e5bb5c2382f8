import type { Duration } from "effect"
import { FileRecords } from "../src/FileRecords.ts"
import { FriendStore } from "../src/FriendStore.ts"
import { GroupStore } from "../src/GroupStore.ts"
import { HistoryStore } from "../src/HistoryStore.ts"
import { InboxStore } from "../src/InboxStore.ts"
import { MessageBus } from "../src/MessageBus.ts"
import { Presence } from "../src/Presence.ts"
import { SeqStore } from "../src/SeqStore.ts"
import { SessionStore } from "../src/SessionStore.ts"
import { ServiceRegistry } from "../src/ServiceRegistry.ts"
import { UserStore } from "../src/UserStore.ts"
import { fileRecordsSuite } from "../testing/FileRecordsSuite.ts"
import { friendStoreSuite } from "../testing/FriendStoreSuite.ts"
import { groupStoreSuite } from "../testing/GroupStoreSuite.ts"
import { historyStoreSuite } from "../testing/HistoryStoreSuite.ts"
import { conversationStoreSuite } from "../testing/ConversationStoreSuite.ts"
import { ConversationStore } from "../src/ConversationStore.ts"
import { inboxStoreSuite } from "../testing/InboxStoreSuite.ts"
import { messageBusSuite } from "../testing/MessageBusSuite.ts"
import { presenceSuite } from "../testing/PresenceSuite.ts"
import { seqStoreSuite } from "../testing/SeqStoreSuite.ts"
import { serviceRegistrySuite } from "../testing/ServiceRegistrySuite.ts"
import { sessionStoreSuite } from "../testing/SessionStoreSuite.ts"
import { userStoreSuite } from "../testing/UserStoreSuite.ts"

// In memory everything happens at once: a short patience makes a broken adapter fail fast.
const patience: Duration.Input = "2 seconds"

seqStoreSuite("memory", SeqStore.layerMemory)
inboxStoreSuite("memory", InboxStore.layerMemory)
historyStoreSuite("memory", HistoryStore.layerMemory)
conversationStoreSuite("memory", ConversationStore.layerMemory)
userStoreSuite("memory", UserStore.layerMemory)
sessionStoreSuite("memory", SessionStore.layerMemory)
groupStoreSuite("memory", GroupStore.layerMemory)
friendStoreSuite("memory", FriendStore.layerMemory)
fileRecordsSuite("memory", FileRecords.layerMemory)
presenceSuite("memory", Presence.layerMemory)
serviceRegistrySuite("memory", ServiceRegistry.layerMemory, { patience })
messageBusSuite("memory, 1 partition", MessageBus.layerMemory(), { patience, marksRedelivered: true })
messageBusSuite("memory, 4 partitions", MessageBus.layerMemory({ partitions: 4 }), { patience, marksRedelivered: true })
