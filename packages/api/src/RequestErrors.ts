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

/**
 * Documents in the OpenAPI document the 400 that `DescribeRequestErrors` answers: every operation
 * with parameters or a body gets it, with its schema.
 */
export const documentRequestErrors = (spec: Record<string, any>): Record<string, any> => {
  const schema = {
    type: "object",
    required: ["_tag", "message"],
    properties: { _tag: { type: "string", enum: ["HttpApiSchemaError"] }, message: { type: "string" } },
    additionalProperties: false
  }
  const answer = { description: "The request failed validation; the message says where and why.", content: { "application/json": { schema } } }
  for (const methods of Object.values(spec["paths"] ?? {}) as Array<Record<string, any>>) {
    for (const operation of Object.values(methods)) {
      if (typeof operation !== "object" || operation === null || operation.responses === undefined) continue
      const hasInput = operation.requestBody !== undefined || (operation.parameters?.length ?? 0) > 0
      if (!hasInput) continue
      const existing = operation.responses["400"]
      operation.responses["400"] = existing === undefined
        ? answer
        : { ...existing, description: `${existing.description ?? ""} Or: ${answer.description}`.trim(), content: mergeContent(existing.content, schema) }
    }
  }
  return spec
}

const mergeContent = (content: Record<string, any> | undefined, schema: Record<string, unknown>) => {
  const current = content?.["application/json"]?.schema
  if (current === undefined) return { "application/json": { schema } }
  const options = Array.isArray(current.anyOf) ? current.anyOf : [current]
  return { ...content, "application/json": { schema: { anyOf: [...options, schema] } } }
}
