// Which actions the console offers: what the incident's state allows (docs/design.md §5)
// and what the token's role may do. The API enforces both again.
import type { Action, Role, Status } from '../api/types'

const BY_STATUS: Record<Status, Action[]> = {
  reported: ['accept', 'close', 'comment'],
  accepted: ['dispatch', 'close', 'comment'],
  dispatched: ['dispatch', 'start', 'close', 'comment'],
  handling: ['resolve', 'close', 'comment'],
  resolved: ['verify', 'reject', 'close', 'comment'],
  verified: ['close', 'comment'],
  closed: ['rate', 'comment'],
}

const BY_ROLE: Record<Role, Action[] | 'all'> = {
  admin: 'all',
  dispatcher: 'all',
  operator: ['comment'],
  grid_worker: ['start', 'resolve', 'comment'],
  integrator: [],
  viewer: [],
  // A dispatched unit's link (its own page, /u/...), which the console is not used with.
  unit_link: [],
}

export function allowedActions(status: Status, role: Role, rated: boolean): Action[] {
  const mine = BY_ROLE[role]
  return BY_STATUS[status].filter(
    (action) => (mine === 'all' || mine.includes(action)) && !(action === 'rate' && rated),
  )
}

/** Keyboard shortcuts of the common actions on the incident page. */
export const SHORTCUTS: Partial<Record<string, Action>> = {
  a: 'accept',
  d: 'dispatch',
  s: 'start',
  r: 'resolve',
  v: 'verify',
  c: 'close',
}

export function canCommand(role: Role): boolean {
  return role === 'admin' || role === 'dispatcher' || role === 'operator'
}

export function canEditRules(role: Role): boolean {
  return role === 'admin' || role === 'operator'
}
