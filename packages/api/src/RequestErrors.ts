import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { HttpApiSchemaError } from "effect/http-api/HttpApiError"

/**
 * HttpApi answers a request that fails validation with an empty 400 (it raises the error as a
 * defect). This gives that answer a body that says what was wrong:
 * `{"_tag": "HttpApiSchemaError", "message": "<where>: <issue>"}`.
 */
export const DescribeRequestErrors = HttpRouter.middleware(
  Effect.succeed((effect) =>
    effect.pipe(
      Effect.catchDefect((defect) =>
        HttpApiSchemaError.is(defect)
          ? HttpServerResponse.json(
            { _tag: "HttpApiSchemaError", message: `${defect.kind}: ${defect.cause.message}`.slice(0, 2000) },
            { status: 400 }
          )
          : Effect.die(defect)
      )
    )
  ),
  { global: true }
)
