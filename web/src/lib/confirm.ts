// Actions the incident loop cannot undo (incidents/states.py) ask the desk to confirm them,
// with a reason where the record needs one, whether a button or a shortcut asked for them:
// - close: from any open state to closed, and nothing reopens a closed incident;
// - reject (核查不通过): sends the work back to handling, and the unit needs to know why;
// - verify (核查通过): resolved → verified has no way back;
// - rate: an incident is rated once;
// - flag_unit: a department's negative-list entry (日常哨) has no way off the record.
import type { Action, CloseReason } from '../api/types'

export type ReasonKind =
  | 'close' // choose one of the close reasons, with an optional comment
  | 'text' // a written reason, required
  | 'none' // a plain confirmation, with an optional note

export interface Confirmation {
  action: Action
  reason: ReasonKind
}

export const CLOSE_REASONS: readonly CloseReason[] = ['resolved', 'false_alarm', 'duplicate', 'not_responsible']

const ASKING: Partial<Record<Action, ReasonKind>> = {
  close: 'close',
  reject: 'text',
  verify: 'none',
  rate: 'none',
  flag_unit: 'none',
}

/** What `action` asks before it is sent, or null when it goes at once. */
export function confirmationFor(action: Action): Confirmation | null {
  const reason = ASKING[action]
  return reason ? { action, reason } : null
}

/** What the dialog holds: the close reason chosen (if any) and the text typed. */
export interface ConfirmInput {
  closeReason: CloseReason | null
  text: string
}

/** Whether the dialog's input is enough to send the action. */
export function isComplete(confirmation: Confirmation, input: ConfirmInput): boolean {
  switch (confirmation.reason) {
    case 'close':
      return input.closeReason !== null
    case 'text':
      return input.text.trim().length > 0
    case 'none':
      return true
  }
}
