import { useEffect, useState } from "preact/hooks"
import type { ChatStore } from "./ChatStore.ts"

/** Re-renders the component whenever the store changes. */
export const useStore = (store: ChatStore): ChatStore => {
  const [, setVersion] = useState(0)
  useEffect(() => store.subscribe(() => setVersion((version) => version + 1)), [store])
  return store
}
