import * as Logging from "@im/platform/Logging"
import * as Main from "@im/platform/Main"
import * as Tracing from "@im/observability/Tracing"
import { Layer } from "effect"
import { Standalone } from "./StandaloneMain.ts"

Main.run(Standalone.pipe(Layer.provide(Logging.layer), Layer.provide(Tracing.layer("standalone"))))
