import { Config, Effect, FileSystem, Layer, Path } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse, HttpStaticServer } from "effect/http"
import { fileURLToPath } from "node:url"

/** Where `npm run build` puts the web client (`packages/web/dist`). */
const BUILT_CLIENT = fileURLToPath(new URL("../../web/dist", import.meta.url))

/** `WEB_DIR`: the folder of the built web client; default the repository's `packages/web/dist`. */
export const WebClientConfig = Config.String("WEB_DIR").pipe(Config.withDefault(BUILT_CLIENT))

const notBuilt = (dir: string) =>
  HttpServerResponse.html(
    `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>IM: web client not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>The web client is not built</h1>
<p>This server serves the web client from <code>${escapeHtml(dir)}</code> (<code>WEB_DIR</code>), which has no
<code>index.html</code>. Build it with <code>npm run build</code> (<code>npm start</code> does that first), then reload.</p>
<p>The API is up: <a href="/docs">/docs</a>, <a href="/openapi.json">/openapi.json</a>.</p>
</body></html>`
  ).pipe(HttpServerResponse.setStatus(503))

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/**
 * The web client at `/`: the files of `WEB_DIR`, for every GET that no API route takes. A path
 * that is neither a route nor a file answers a JSON 404 (`RouteNotFound`), as the API's errors
 * do; `/` without a build answers a page saying how to build it. Files are looked up on each
 * request, so a build made while the server runs is served at once.
 */
export const WebClientRoutes = Layer.effectDiscard(Effect.gen(function*() {
  const dir = yield* WebClientConfig
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const router = yield* HttpRouter.HttpRouter
  // no-cache: the browser revalidates (ETag), so a new build shows on the next load.
  const files = yield* HttpStaticServer.make({ root: dir, cacheControl: "no-cache" })

  const handler = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const pathname = new URL(request.url, "http://localhost").pathname
    if (pathname === "/" || pathname === "/index.html") {
      const built = yield* fs.exists(path.join(dir, "index.html")).pipe(Effect.orElseSucceed(() => false))
      if (!built) return notBuilt(dir)
    }
    return yield* files.pipe(
      Effect.catch((error) =>
        error.reason._tag === "RouteNotFound"
          ? Effect.succeed(HttpServerResponse.jsonUnsafe(
            { _tag: "RouteNotFound", message: `no route or file GET ${pathname}` },
            { status: 404 }
          ))
          : Effect.fail(error)
      )
    )
  })
  yield* router.add("GET", "/*", handler)
}))
