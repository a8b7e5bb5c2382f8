/** A round badge with initials, coloured by id so a person keeps their colour. */
export const Avatar = (props: { readonly id: string; readonly name: string; readonly group?: boolean }) => {
  let hash = 0
  for (const char of props.id) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  const initials = props.name === "…" ? "" : props.name.split(/\s+/).map((word) => word[0] ?? "").join("").slice(0, 2).toUpperCase()
  return (
    <span class={`avatar ${props.group ? "group" : ""}`} style={{ background: `hsl(${hash % 360} 55% 48%)` }} aria-hidden="true">
      {initials}
    </span>
  )
}

/** `14:05` today, `12 Mar` before. */
export const formatTime = (time: number): string => {
  const date = new Date(time)
  return date.toDateString() === new Date().toDateString()
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { day: "numeric", month: "short" })
}

/** Icons as SVG: emoji need a colour-emoji font that many machines lack. */
export const PaperclipIcon = () => (
  <svg class="icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
    <path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"
      d="M21 11.5 12.5 20a5.5 5.5 0 0 1-7.8-7.8l8.5-8.5a3.7 3.7 0 0 1 5.2 5.2l-8.5 8.5a1.8 1.8 0 0 1-2.6-2.6l7.8-7.8" />
  </svg>
)

export const FileIcon = () => (
  <svg class="icon" viewBox="0 0 24 24" width="28" height="28" aria-hidden="true">
    <path fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round"
      d="M6 2.5h8l5 5v14H6z M14 2.5v5h5" />
  </svg>
)
