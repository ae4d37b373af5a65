// The wall (大屏) and the map (一张图): whistle colours, clusters, figures as a wall shows them.
import type { Priority } from '../api/types'
import { PRIORITY_RANK } from './whistle'

/** One colour per whistle wherever an incident is marked (map markers, clusters, figures). */
export const WHISTLE_COLOURS: Record<Priority, string> = {
  emergency: '#e53935',
  major: '#fb8c00',
  routine: '#1e88e5',
}

/** A cluster takes the colour of the most urgent whistle inside it. */
export function clusterPriority(priorities: Priority[]): Priority {
  return priorities.reduce<Priority>(
    (worst, p) => (PRIORITY_RANK[p] < PRIORITY_RANK[worst] ? p : worst),
    'routine',
  )
}

/** A rate (0..1) as the wall prints it: "66.7%", or "—" when nothing was determined yet. */
export function percent(rate: number | null | undefined): string {
  return rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)}%`
}

/** The wall's type size: one unit a 45th of the height (24 px at 1080 lines, 48 px at 2160),
 * narrowed on a screen less wide than 16:9 so that nothing spills sideways. */
export function wallUnit(width: number, height: number): number {
  return Math.max(8, Math.min(height / 45, width / 80))
}

/** How many rows of `rowPx` fit in `available` px, keeping one for "N more" when not all do. */
export function rowsThatFit(available: number, rowPx: number, total: number): number {
  if (rowPx <= 0) return total
  const room = Math.max(0, Math.floor(available / rowPx))
  return total <= room ? total : Math.max(0, room - 1)
}

/** The largest `n` entries of a count map, largest first (ties by name). */
export function topCounts(counts: Record<string, number>, n: number): [string, number][] {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, n)
}
