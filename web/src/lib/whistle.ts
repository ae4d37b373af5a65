// The three whistles (三哨) and the order a duty desk works incidents in.
import type { Incident, Priority } from '../api/types'

export const PRIORITY_RANK: Record<Priority, number> = { emergency: 0, major: 1, routine: 2 }

/** Emergencies first, then by the nearest deadline still ahead of the incident. */
export function byUrgency(a: Incident, b: Incident): number {
  const rank = PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority]
  if (rank !== 0) return rank
  return Date.parse(nextDeadline(a)) - Date.parse(nextDeadline(b)) || b.id - a.id
}

/** The deadline the board sorts by: accepting until accepted, then resolving (which deadline
 * still runs, for the clocks, is lib/deadline.ts's runningDeadline). */
export function nextDeadline(incident: Incident): string {
  return incident.accepted_at === null && incident.status === 'reported'
    ? incident.accept_by
    : incident.resolve_by
}

/** Whether a new incident should raise the popup and the sound. */
export function isAlarming(incident: Incident): boolean {
  return incident.priority === 'emergency' || incident.priority === 'major'
}
