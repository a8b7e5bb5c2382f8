// The end-to-end tests' standalone server (in process, on a free port) and HTTP helpers.
import { getJson, makeUser, postJson, type TestUser } from "../../e2e/test/Raw.ts"
import { startTarget, type Target } from "../../e2e/test/Target.ts"
import { copyFile } from "node:fs/promises"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  conversation,
  launchChromium,
  message,
  messageInState,
  person,
  png,
  README_SCREENSHOT,
  register,
  screenshot,
  SCREENSHOTS,
  send,
  texts
} from "./Browser.ts"

// Two people, each in a browser context of their own (own storage, own socket), on one server.
const alice = person("Alice")
const bob = person("Bob")

let target: Target
let browser: Browser
let aliceContext: BrowserContext
let bobContext: BrowserContext
let alicePage: Page
let bobPage: Page

/** A fresh session of a person through the API, for what the test sets up around the pages. */
const apiLogin = async (who: { account: string; password: string }): Promise<TestUser> => {
  const login = await postJson(target, "/auth/login", { account: who.account, password: who.password })
  if (login.status !== 200) throw new Error(`login failed: ${JSON.stringify(login)}`)
  return { id: login.body.user.id, account: who.account, password: who.password, token: login.body.token }
}

const newContext = async (): Promise<BrowserContext> => {
  const context = await browser.newContext({ viewport: { width: 1180, height: 760 } })
  context.setDefaultTimeout(15_000)
  return context
}

beforeAll(async () => {
  target = await startTarget()
  browser = await launchChromium()
  aliceContext = await newContext()
  bobContext = await newContext()
  alicePage = await aliceContext.newPage()
  bobPage = await bobContext.newPage()
  await Promise.all([alicePage.goto(target.baseUrl), bobPage.goto(target.baseUrl)])
})

afterAll(async () => {
  await browser?.close()
  await target?.stop()
})

describe("the web client in Chromium, two people chatting", () => {
  it("serves the client at /, and both register and become friends", async () => {
    await alicePage.getByTestId("login-form").waitFor()
    await screenshot(alicePage, "01-login")
    await register(alicePage, alice)
    await register(bobPage, bob)

    await alicePage.getByTestId("tab-contacts").click()
    await alicePage.getByTestId("add-friend-account").fill(bob.account)
    await alicePage.getByTestId("add-friend-submit").click()
    await alicePage.getByTestId("outgoing-request").filter({ hasText: "Bob" }).waitFor()

    // The request reaches Bob live, as a notice.
    await bobPage.getByTestId("tab-contacts").click()
    await bobPage.getByTestId("requests-badge").filter({ hasText: "1" }).waitFor()
    const request = bobPage.getByTestId("friend-request").filter({ hasText: "Alice" })
    await screenshot(bobPage, "02-friend-request")
    await request.getByTestId("accept-request").click()

    await bobPage.getByTestId("contact").filter({ hasText: "Alice" }).waitFor()
    await alicePage.getByTestId("contact").filter({ hasText: "Bob" }).waitFor()
    expect(await alicePage.getByTestId("outgoing-request").count()).toBe(0)
  })

  it("chats both ways live, with unread counts and read receipts", async () => {
    await alicePage.getByTestId("contact").filter({ hasText: "Bob" }).click()
    await alicePage.getByTestId("chat-title").filter({ hasText: "Bob" }).waitFor()
    await send(alicePage, "Hi Bob! Are you coming on Saturday?")
    await messageInState(alicePage, "Are you coming on Saturday?", "sent")

    await bobPage.getByTestId("tab-chats").click()
    const fromAlice = conversation(bobPage, "Alice")
    expect(await fromAlice.getByTestId("conversation-unread").textContent()).toBe("1")
    await fromAlice.click()
    await messageInState(bobPage, "Are you coming on Saturday?", "received")
    // Reading it tells Alice: her message turns to read, and Bob's badge is gone.
    await messageInState(alicePage, "Are you coming on Saturday?", "read")
    expect(await fromAlice.getByTestId("conversation-unread").count()).toBe(0)

    await send(bobPage, "Yes! I'll bring the tent.")
    await messageInState(alicePage, "I'll bring the tent.", "received")
    await messageInState(bobPage, "I'll bring the tent.", "read")
    expect(await texts(alicePage)).toEqual(["Hi Bob! Are you coming on Saturday?", "Yes! I'll bring the tent."])
    await screenshot(alicePage, "03-chat-alice")
    await screenshot(bobPage, "03-chat-bob")
  })

  it("Bob closes his page, Alice writes three times, and Bob finds them in order when he comes back", async () => {
    await bobPage.close()
    const missed = ["First, the weather looks good", "Second, we leave at 8", "Third, bring snacks"]
    for (const text of missed) await send(alicePage, text)
    for (const text of missed) await messageInState(alicePage, text, "sent")

    // The session is kept in the browser: reopening resumes it and syncs what was missed.
    bobPage = await bobContext.newPage()
    await bobPage.goto(target.baseUrl)
    await bobPage.getByTestId("me-name").filter({ hasText: "Bob" }).waitFor()
    await bobPage.getByTestId("connection-status").and(bobPage.locator("[data-status=synced]")).waitFor()
    const fromAlice = conversation(bobPage, "Alice")
    await fromAlice.getByTestId("conversation-unread").filter({ hasText: "3" }).waitFor()
    await screenshot(bobPage, "04-back-online")
    await fromAlice.click()
    await messageInState(bobPage, missed[2]!, "received")
    expect(await texts(bobPage)).toEqual(["Hi Bob! Are you coming on Saturday?", "Yes! I'll bring the tent.", ...missed])
    await messageInState(alicePage, missed[2]!, "read")
  })

  it("sends files and images both ways: a download link, an inline preview", async () => {
    // Alice: a text file and a picture.
    const list = Buffer.from("tent\nsleeping bags\nstove\n")
    await alicePage.getByTestId("composer-file").setInputFiles({ name: "packing-list.txt", mimeType: "text/plain", buffer: list })
    await messageInState(alicePage, "packing-list.txt", "sent")
    const picture = await png(alicePage, 320, 240, 200)
    await alicePage.getByTestId("composer-file").setInputFiles({ name: "campsite.png", mimeType: "image/png", buffer: picture })

    const link = bobPage.getByTestId("message-file").filter({ hasText: "packing-list.txt" })
    await link.waitFor()
    expect(await link.textContent()).toContain(`${list.length} B`)
    const [download] = await Promise.all([bobContext.waitForEvent("page"), link.click()])
    await download.waitForLoadState()
    expect(await download.locator("body").textContent()).toBe(list.toString())
    await download.close()
    await waitForImage(bobPage)
    expect(await imageWidths(bobPage)).toEqual([320])

    // Bob: the same both ways.
    await bobPage.getByTestId("composer-file").setInputFiles({ name: "map.txt", mimeType: "text/plain", buffer: Buffer.from("turn left at the lake") })
    await bobPage.getByTestId("composer-file").setInputFiles({ name: "lake.png", mimeType: "image/png", buffer: await png(bobPage, 240, 180, 20) })
    await alicePage.getByTestId("message-file").filter({ hasText: "map.txt" }).waitFor()
    await messageInState(alicePage, "map.txt", "received")
    await waitForImage(alicePage, 2)
    expect(await imageWidths(alicePage)).toEqual([320, 240])
    await send(alicePage, "Perfect, see you there!")
    await messageInState(alicePage, "see you there", "read")
    await screenshot(alicePage, "05-files-alice")
    await screenshot(bobPage, "05-files-bob")
  })

  it("group chat: create, talk, invite and remove a member, leave", async () => {
    // Carol is Alice's friend (made through the API), so Alice can invite her.
    const carol = await makeUser(target, "Carol")
    const aliceApi = await apiLogin(alice)
    const asked = await postJson(target, "/friends/requests", { user_id: aliceApi.id }, carol.token)
    expect(asked.status).toBe(201)
    expect((await postJson(target, `/friends/requests/${asked.body.id}/accept`, {}, aliceApi.token)).status).toBe(200)

    await alicePage.getByTestId("new-group").click()
    await alicePage.getByTestId("group-name").fill("Weekend trip")
    const bobApi = await apiLogin(bob)
    await alicePage.locator(`[data-testid=group-pick][data-user-id="${bobApi.id}"]`).check()
    await alicePage.getByTestId("create-group").click()
    await alicePage.getByTestId("chat-title").filter({ hasText: "Weekend trip" }).waitFor()
    await send(alicePage, "Made us a group!")

    const group = conversation(bobPage, "Weekend trip")
    await group.getByTestId("conversation-unread").filter({ hasText: "1" }).waitFor()
    await group.click()
    await messageInState(bobPage, "Made us a group!", "received")
    await send(bobPage, "Count me in")
    await messageInState(alicePage, "Count me in", "received")
    await messageInState(bobPage, "Count me in", "read")
    expect(await alicePage.getByTestId("group-event").first().textContent()).toContain("created the group")

    await alicePage.getByTestId("group-members-toggle").click()
    await alicePage.getByTestId("group-member").nth(1).waitFor()
    await alicePage.getByTestId("invite-select").selectOption(carol.id)
    await alicePage.getByTestId("invite-submit").click()
    const carolRow = alicePage.locator(`[data-testid=group-member][data-user-id="${carol.id}"]`)
    await carolRow.waitFor()
    expect(await alicePage.getByTestId("group-member").count()).toBe(3)
    await screenshot(alicePage, "07-group")
    await carolRow.getByTestId("remove-member").click()
    await carolRow.waitFor({ state: "detached" })
    await alicePage.getByTestId("group-event").filter({ hasText: "removed Carol" }).waitFor()

    await bobPage.getByTestId("group-members-toggle").click()
    await bobPage.getByTestId("leave-group").click()
    await bobPage.getByTestId("not-member").waitFor()
    await alicePage.getByTestId("group-event").filter({ hasText: "Bob left" }).waitFor()
    await alicePage.locator(`[data-testid=group-member][data-user-id="${bobApi.id}"]`).waitFor({ state: "detached" })
    expect(await alicePage.getByTestId("group-member").count()).toBe(1)
    await screenshot(alicePage, "08-group-after")
  })

  it("a send the server refuses shows as failed with Retry, and the retry delivers it", async () => {
    // Bob blocks Alice (through the API), so her next message is refused; unblocking lets the retry through.
    const bobApi = await apiLogin(bob)
    const aliceId = (await getJson(target, `/users?account=${alice.account}`, bobApi.token)).body[0].id
    expect((await postJson(target, `/friends/${aliceId}/block`, {}, bobApi.token)).status).toBe(204)

    await conversation(alicePage, "Bob").click()
    await send(alicePage, "Did you get my list?")
    await messageInState(alicePage, "Did you get my list?", "failed")
    expect(await message(alicePage, "Did you get my list?").getByTestId("send-error").textContent()).toContain("cannot message")
    await screenshot(alicePage, "06-failed")

    const unblocked = await fetch(`${target.baseUrl}/friends/${aliceId}/block`, { method: "DELETE", headers: { authorization: `Bearer ${bobApi.token}` } })
    expect(unblocked.status).toBe(204)
    await message(alicePage, "Did you get my list?").getByTestId("retry-send").click()
    await messageInState(alicePage, "Did you get my list?", "sent")
    await conversation(bobPage, "Alice").click()
    await messageInState(bobPage, "Did you get my list?", "received")
    expect(await message(alicePage, "Did you get my list?").count()).toBe(1)
    await messageInState(alicePage, "Did you get my list?", "read")

    // The README's picture: `UPDATE_SCREENSHOT=1 npm run test:browser` refreshes docs/screenshot-chat.png.
    await alicePage.getByTestId("chat-subtitle").filter({ hasNotText: "typing" }).waitFor()
    await alicePage.mouse.move(600, 300)
    await screenshot(alicePage, "readme")
    if (process.env["UPDATE_SCREENSHOT"] === "1") await copyFile(`${SCREENSHOTS}readme.png`, README_SCREENSHOT)
  })
})

const waitForImage = (page: Page, count = 1) =>
  page.waitForFunction(
    (count) => [...document.querySelectorAll<HTMLImageElement>("[data-testid=message-image]")].filter((img) => img.complete && img.naturalWidth > 0).length >= count,
    count
  )

const imageWidths = (page: Page) =>
  page.getByTestId("message-image").evaluateAll((images) => images.map((img) => (img as HTMLImageElement).naturalWidth))
