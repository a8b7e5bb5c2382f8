import { build } from "vite"

/** Builds the web client the server serves, so the browser tests run what the code says now. */
export default async function setup(): Promise<void> {
  await build({ configFile: new URL("../vite.config.ts", import.meta.url).pathname, logLevel: "warn" })
}
