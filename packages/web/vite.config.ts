import { defineConfig } from "vite"

/** Where `npm run dev -w packages/web` sends the API and the WebSocket: a server started with `npm start`. */
const server = "http://127.0.0.1:8080"
const apiPaths = ["/auth", "/users", "/friends", "/groups", "/files", "/conversations", "/messages", "/inbox", "/gateway"]

// The web client: `npm run build` writes dist/, which the server serves at `/`.
export default defineConfig({
  root: import.meta.dirname,
  // Relative asset URLs: the build works wherever it is served from.
  base: "./",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", reportCompressedSize: false },
  server: {
    proxy: { ...Object.fromEntries(apiPaths.map((path) => [path, server])), "/ws": { target: server, ws: true } }
  }
})
