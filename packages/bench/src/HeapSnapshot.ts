/**
 * Summarizes V8 heap snapshots (`node --heapsnapshot-signal=SIGUSR2 …`, then `kill -USR2 PID`):
 * self size and count per constructor (or node type), and, given two snapshots, what grew
 * between them, divided by a count (e.g. connections opened). Run directly:
 * `node --max-old-space-size=8000 packages/bench/src/HeapSnapshot.ts BEFORE AFTER [PER]`
 */
import { readFileSync } from "node:fs"

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: ReadonlyArray<string>; readonly node_types: ReadonlyArray<unknown> } }
  readonly nodes: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

export interface HeapClass {
  readonly name: string
  readonly count: number
  readonly bytes: number
}

/** Self size and count per class: `type:name` for objects (name = constructor), `type` for the rest. */
export const heapClasses = (file: string): Map<string, HeapClass> => {
  const snapshot = JSON.parse(readFileSync(file, "utf8")) as Snapshot
  const fields = snapshot.snapshot.meta.node_fields
  const types = snapshot.snapshot.meta.node_types[0] as ReadonlyArray<string>
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const classes = new Map<string, { name: string; count: number; bytes: number }>()
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt]!]!
    const name = type === "object" || type === "closure" || type === "native"
      ? `${type}:${snapshot.strings[snapshot.nodes[i + nameAt]!]!.slice(0, 60)}`
      : type
    let entry = classes.get(name)
    if (entry === undefined) classes.set(name, entry = { name, count: 0, bytes: 0 })
    entry.count++
    entry.bytes += snapshot.nodes[i + sizeAt]!
  }
  return classes
}

export const heapGrowth = (before: Map<string, HeapClass>, after: Map<string, HeapClass>, per = 1, top = 25) => {
  const grown = [...after.values()].map((a) => {
    const b = before.get(a.name)
    return { name: a.name, count: (a.count - (b?.count ?? 0)) / per, bytes: (a.bytes - (b?.bytes ?? 0)) / per }
  })
  const total = (m: Map<string, HeapClass>) => [...m.values()].reduce((n, c) => n + c.bytes, 0)
  return {
    total_before: total(before),
    total_after: total(after),
    per_unit: (total(after) - total(before)) / per,
    top: grown.sort((a, b) => b.bytes - a.bytes).slice(0, top)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [beforeFile, afterFile, perArg] = process.argv.slice(2)
  const per = Number(perArg ?? 1)
  const growth = heapGrowth(heapClasses(beforeFile!), heapClasses(afterFile!), per)
  const mb = (n: number) => (n / 2 ** 20).toFixed(1)
  console.log(`heap (self sizes): ${mb(growth.total_before)} MB → ${mb(growth.total_after)} MB; ${Math.round(growth.per_unit)} bytes per unit (÷ ${per})`)
  console.log("grown the most, per unit:   bytes   objects  class")
  for (const c of growth.top) console.log(`  ${Math.round(c.bytes).toString().padStart(28)}  ${c.count.toFixed(2).padStart(8)}  ${c.name}`)
}
