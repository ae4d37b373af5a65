// Which of an incident's two deadlines is still running. An incident has a deadline to be
// accepted by and one to be resolved by; a desk reads only the one it can still meet or miss:
// accepting until someone accepts, then resolving until it is resolved, then none.
import type { Incident } from '../api/types'

export type DeadlineKind = 'accept' | 'resolve'

export interface RunningDeadline {
  kind: DeadlineKind
  /** ISO timestamp the clock counts down to. */
  at: string
}

/** The statuses between acceptance and resolution, in which the resolve clock runs. */
const BEING_WORKED: readonly Incident['status'][] = ['accepted', 'dispatched', 'handling']

/** The deadline still running, or null once the incident is resolved (or closed). */
export function runningDeadline(incident: Incident): RunningDeadline | null {
  if (incident.status === 'reported' && incident.accepted_at === null) {
    return { kind: 'accept', at: incident.accept_by }
  }
  if (BEING_WORKED.includes(incident.status)) return { kind: 'resolve', at: incident.resolve_by }
  return null
}

/** Whether the running deadline has passed at `now` (never, when none runs). */
export function isOverdue(incident: Incident, now: number): boolean {
  const running = runningDeadline(incident)
  return running !== null && Date.parse(running.at) < now
}
