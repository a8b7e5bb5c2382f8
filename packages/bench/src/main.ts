import { parseOptions, usage } from "./Options.ts"
import { cleanup, run } from "./Run.ts"

let options
try {
  options = parseOptions(process.argv.slice(2))
} catch (error) {
  console.error(`${(error as Error).message}\n\n${usage}`)
  process.exit(64)
}
if (options === "help") {
  console.log(usage)
  process.exit(0)
}

// kafkajs (read for the cluster's backlog) sets a timer from a zero deadline and Node warns about it.
process.removeAllListeners("warning")
process.on("warning", (warning) => {
  if (warning.name !== "TimeoutNegativeWarning") console.warn(warning)
})

let interrupted = false
const interrupt = (signal: string) => {
  if (interrupted) return
  interrupted = true
  console.error(`\n${signal}: stopping what the bench started…`)
  cleanup().finally(() => process.exit(130))
}
process.on("SIGINT", () => interrupt("SIGINT"))
process.on("SIGTERM", () => interrupt("SIGTERM"))

run(options).then(
  (code) => process.exit(code),
  async (error) => {
    // After an interrupt, the failures are those of the processes being stopped.
    if (!interrupted) console.error("bench failed:", error)
    await cleanup()
    process.exit(1)
  }
)
