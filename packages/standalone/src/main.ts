import { NodeRuntime } from "@effect/platform-node"
import * as Logging from "@im/platform/Logging"
import { Layer } from "effect"
import { Standalone } from "./StandaloneMain.ts"

Layer.launch(Standalone.pipe(Layer.provide(Logging.layer))).pipe(NodeRuntime.runMain)
