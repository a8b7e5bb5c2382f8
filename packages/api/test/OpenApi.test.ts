import { describe, expect, it } from "vitest"
import { HttpApi, OpenApi } from "effect/http-api"
import { Authorization, ImApi } from "../src/Api.ts"

interface Route {
  readonly method: string
  readonly path: string
  readonly hasPayload: boolean
  readonly protected: boolean
}

/** Every route the API declares, from the API's own definition. */
const routes: Array<Route> = []
HttpApi.reflect(ImApi, {
  onGroup: () => {},
  onEndpoint: ({ endpoint, middleware }) =>
    routes.push({
      method: endpoint.method.toLowerCase(),
      path: endpoint.path.replace(/:(\w+)/g, "{$1}"),
      hasPayload: endpoint.payload.size > 0,
      protected: [...middleware].some((service) => service.key === Authorization.key)
    })
})

const spec = OpenApi.fromApi(ImApi) as any

describe("/openapi.json", () => {
  it("describes every route of the API, and nothing else", () => {
    expect(routes.length, "the reflection found the routes").toBeGreaterThan(20)
    // Only sign-up, login, refresh and the health check are open.
    expect(routes.filter((route) => !route.protected).map((route) => route.path).sort()).toEqual(
      ["/auth/login", "/auth/refresh", "/auth/register", "/health"]
    )
    const documented = Object.entries(spec.paths).flatMap(([path, methods]) =>
      Object.keys(methods as object).filter((key) => ["get", "post", "put", "patch", "delete"].includes(key)).map((method) => `${method} ${path}`)
    )
    expect(documented.sort()).toEqual(routes.map((route) => `${route.method} ${route.path}`).sort())
  })

  for (const route of routes) {
    it(`${route.method.toUpperCase()} ${route.path}: a description, its request and response schemas, its errors`, () => {
      const operation = spec.paths[route.path][route.method]
      expect(operation.description, "description").toEqual(expect.any(String))
      expect(operation.description.length).toBeGreaterThan(10)
      if (route.hasPayload) {
        expect(operation.requestBody?.content?.["application/json"]?.schema, "request schema").toBeDefined()
      }
      const successes = Object.entries(operation.responses).filter(([status]) => status.startsWith("2"))
      expect(successes.length, "a success response").toBeGreaterThan(0)
      for (const [status, response] of successes as Array<[string, any]>) {
        if (status !== "204") expect(response.content?.["application/json"]?.schema, `${status} schema`).toBeDefined()
      }
      const statuses = Object.keys(operation.responses)
      // Every route validates its input, and the protected ones say who may call them.
      if (route.hasPayload || operation.parameters?.length > 0) expect(statuses).toContain("400")
      if (route.protected) {
        expect(statuses).toContain("401")
        expect(operation.security).toEqual([{ bearer: [] }])
      }
    })
  }
})
