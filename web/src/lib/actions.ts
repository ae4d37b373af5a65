// Where the console offers each action. Which ones the caller may take comes from the API, each
// incident's `allowed_actions` (api/permissions.py: the role, its reach and the incident's
// state); the console only places them.
import type { Action, Capability, Incident, Me } from '../api/types'

/** 吹哨报到's actions: the summon picker and board offer them, not the action panel. */
const ON_THE_SUMMON_BOARD: readonly Action[] = ['summon', 'report_in', 'rate_unit', 'flag_unit', 'rate_whistle']

/** Whether the caller may take `action` on the incident now (as the API last said). */
export function may(incident: Incident, action: Action): boolean {
  return (incident.allowed_actions ?? []).includes(action)
}

/** The action panel's buttons, in the API's order. */
export function panelActions(incident: Incident): Action[] {
  return (incident.allowed_actions ?? []).filter((action) => !ON_THE_SUMMON_BOARD.includes(action))
}

/** Whether the signed-in token's role holds a capability (`/me`). */
export function holds(me: Me | null | undefined, capability: Capability): boolean {
  return me?.capabilities.includes(capability) ?? false
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
