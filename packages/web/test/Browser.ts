import { mkdir } from "node:fs/promises"
import { type Browser, chromium, type Locator, type Page } from "playwright-core"

/** Debian's `chromium` package; `CHROMIUM_PATH` names another build. */
export const CHROMIUM_PATH = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"

/** Where the screenshots of a run are kept (gitignored); the README's picture is in docs/. */
export const SCREENSHOTS = new URL("../../../test-results/browser/", import.meta.url).pathname
export const README_SCREENSHOT = new URL("../../../docs/screenshot-chat.png", import.meta.url).pathname

/**
 * Headless Chromium for a machine without outside network, as root: no sandbox, no GPU, and
 * nothing that phones home. Playwright gives it a fresh `--user-data-dir` of its own.
 */
export const launchChromium = (): Promise<Browser> =>
  chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    chromiumSandbox: false,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })

export const screenshot = async (page: Page, name: string, path = `${SCREENSHOTS}${name}.png`): Promise<void> => {
  await mkdir(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path })
}

/** The account and password of a user the test registers through the page. */
export interface Person {
  readonly account: string
  readonly password: string
  readonly name: string
}

export const person = (name: string): Person => ({
  account: `${name.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}`,
  password: `pw-${Math.random().toString(36).slice(2)}`,
  name
})

/** Registers through the login screen; resolves once the chat screen shows the user. */
export const register = async (page: Page, who: Person): Promise<void> => {
  await page.getByTestId("login-switch").click()
  await page.getByTestId("login-account").fill(who.account)
  await page.getByTestId("login-name").fill(who.name)
  await page.getByTestId("login-password").fill(who.password)
  await page.getByTestId("login-submit").click()
  await page.getByTestId("me-name").filter({ hasText: who.name }).waitFor()
}

/** The messages of the open conversation that contain `text`. */
export const message = (page: Page, text: string): Locator =>
  page.getByTestId("message").filter({ hasText: text })

/**
 * Waits until the message with `text` has this state (`uploading`, `sending`, `sent`, `failed`,
 * `read`, `received`). If it never does, the error says what the page shows instead: the state
 * of each message with that text (and a failed one's error), and the connection's status.
 */
export const messageInState = async (page: Page, text: string, state: string): Promise<void> => {
  try {
    await page.locator(`[data-testid=message][data-state=${state}]`).filter({ hasText: text }).first().waitFor()
  } catch (error) {
    const shown = await message(page, text).evaluateAll((nodes) =>
      nodes.map((node) => {
        const failure = node.querySelector("[data-testid=send-error]")?.textContent
        return `${node.getAttribute("data-state")}${failure ? ` (${failure})` : ""}`
      })
    ).catch(() => [] as Array<string>)
    const status = await page.getByTestId("connection-status").getAttribute("data-status", { timeout: 1_000 }).catch(() => "unknown")
    const seen = shown.length === 0 ? "no such message" : shown.join(", ")
    throw new Error(`message "${text}" never reached state ${state}: the page shows ${seen}; connection ${status}`, { cause: error })
  }
}

export const conversation = (page: Page, title: string): Locator =>
  page.locator(`[data-testid=conversation][data-title="${title}"]`)

export const send = async (page: Page, text: string): Promise<void> => {
  await page.getByTestId("composer-input").fill(text)
  await page.getByTestId("composer-input").press("Enter")
}

/** The text messages of the open conversation, in the order shown. */
export const texts = (page: Page): Promise<Array<string>> => page.getByTestId("message-text").allTextContents()

/** A small PNG drawn in the page: a landscape (sky, sun, hills) of `width`×`height` in a hue. */
export const png = async (page: Page, width: number, height: number, hue: number): Promise<Buffer> => {
  const base64 = await page.evaluate(([width, height, hue]) => {
    const canvas = document.createElement("canvas")
    canvas.width = width
    canvas.height = height
    const context = canvas.getContext("2d")!
    const sky = context.createLinearGradient(0, 0, 0, height)
    sky.addColorStop(0, `hsl(${hue} 70% 55%)`)
    sky.addColorStop(1, `hsl(${hue + 40} 80% 80%)`)
    context.fillStyle = sky
    context.fillRect(0, 0, width, height)
    context.fillStyle = "hsl(45 100% 85%)"
    context.beginPath()
    context.arc(width * 0.72, height * 0.35, height * 0.12, 0, Math.PI * 2)
    context.fill()
    for (const [shade, top] of [[30, 0.55], [22, 0.7]] as const) {
      context.fillStyle = `hsl(${hue + 120} 35% ${shade}%)`
      context.beginPath()
      context.moveTo(0, height)
      for (let x = 0; x <= width; x += width / 8) context.lineTo(x, height * top + Math.sin(x / width * 7 + top * 9) * height * 0.08)
      context.lineTo(width, height)
      context.fill()
    }
    return canvas.toDataURL("image/png").split(",")[1]!
  }, [width, height, hue] as const)
  return Buffer.from(base64, "base64")
}
