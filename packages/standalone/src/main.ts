import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { Standalone } from "./StandaloneMain.ts"
import { LoggingLive } from "./StandaloneConfig.ts"

Layer.launch(Standalone.pipe(Layer.provide(LoggingLive))).pipe(NodeRuntime.runMain)
