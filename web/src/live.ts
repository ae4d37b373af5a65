// What the board shows, kept live: the open incidents fetched once, then changed by the
// stream's events, fetched again after a reconnect or a gap (never a page reload).
import { reactive, ref } from 'vue'
import { api } from './api/client'
import { LiveStream } from './api/stream'
import type { Incident, StreamEvent } from './api/types'
import { isAlarming } from './lib/whistle'

export const incidents = reactive(new Map<number, Incident>())
export const connected = ref(false)
/** Emergencies and major incidents that opened while the board was watching and wait to be
 * accepted, oldest first: the popup shows them and the tone rings for them. */
export const alarms = ref<Incident[]>([])
/** Moves on every change to `incidents` (an event applied, a fetch done): a view that shows
 * figures the API computes from them (the wall's) fetches those again when it moves. */
export const revision = ref(0)

let stream: LiveStream | null = null
let loadedOnce = false

let loading: Promise<void> | null = null
let again = false

/** Fetch the open incidents anew; a call while one runs makes it run once more after. */
export function reload(): Promise<void> {
  if (loading) {
    again = true
    return loading
  }
  loading = fetchOpen().finally(() => {
    loading = null
    if (again) {
      again = false
      void reload()
    }
  })
  return loading
}

async function fetchOpen(): Promise<void> {
  const found: Incident[] = []
  let cursor: string | undefined
  do {
    const page = await api.incidents({ open: true, cursor })
    found.push(...page.items)
    cursor = page.next ?? undefined
  } while (cursor)
  // All at once: one render of the board, not one per page.
  const seen = new Set(found.map((i) => i.id))
  for (const id of [...incidents.keys()]) if (!seen.has(id)) incidents.delete(id)
  for (const incident of found) incidents.set(incident.id, incident)
  loadedOnce = true
  revision.value += 1
}

export function apply(event: StreamEvent): void {
  const incident = event.incident
  if (!incident || !event.type.startsWith('incident.')) return
  if (incident.status === 'closed') {
    incidents.delete(incident.id)
  } else {
    incidents.set(incident.id, incident)
  }
  const pending = alarms.value.filter((a) => a.id !== incident.id)
  if (event.type === 'incident.created' && isAlarming(incident) && incident.status === 'reported') {
    pending.push(incident)
  }
  alarms.value = pending.filter((a) => incidents.get(a.id)?.status === 'reported')
  revision.value += 1
}

export function startLive(): void {
  if (stream) return
  stream = new LiveStream({
    event: apply,
    resync: () => void reload(),
    status: (up) => (connected.value = up),
  })
  stream.start()
  if (!loadedOnce) void reload()
}

export function stopLive(): void {
  stream?.stop()
  stream = null
  incidents.clear()
  alarms.value = []
  loadedOnce = false
}
