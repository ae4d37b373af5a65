import { describe, expect, it } from 'vitest'
import type { Action, Incident } from '../api/types'
import { confirmationFor, isComplete } from './confirm'
import { isOverdue, runningDeadline } from './deadline'
import { firstSource } from './evidence'
import { floorText, placeWithFloor } from './place'

function incident(fields: Partial<Incident>): Incident {
  return {
    id: 1, rule_id: null, category: 'fire', priority: 'major', status: 'reported',
    area: '440311001002', site: '楼村花园', building: '3栋', floor: null, title: 't',
    created_at: '2026-12-01T00:00:00Z', updated_at: '2026-12-01T00:00:00Z',
    accept_by: '2026-12-01T00:05:00Z', resolve_by: '2026-12-01T04:00:00Z', accepted_at: null,
    closed_at: null, close_reason: null, unit_id: null, suggested_unit_id: null, lat: null,
    lon: null, signal_count: 1, evidence: [], escalated_to: null, escalations: 0, rating: null,
    source: 'rule', rule_version: null, first_signal_at: '2026-12-01T00:00:00Z',
    last_signal_at: '2026-12-01T00:00:00Z', allowed_actions: [], ...fields,
  }
}
const accepted = '2026-12-01T00:01:00Z'

describe('the deadline still running', () => {
  it('is the accept deadline until someone accepts', () => {
    expect(runningDeadline(incident({}))).toEqual({ kind: 'accept', at: '2026-12-01T00:05:00Z' })
  })
  it('is the resolve deadline from acceptance until resolved', () => {
    for (const status of ['accepted', 'dispatched', 'handling'] as const) {
      expect(runningDeadline(incident({ status, accepted_at: accepted }))).toEqual({
        kind: 'resolve',
        at: '2026-12-01T04:00:00Z',
      })
    }
  })
  it('is none once resolved, verified or closed', () => {
    for (const status of ['resolved', 'verified', 'closed'] as const) {
      expect(runningDeadline(incident({ status, accepted_at: accepted }))).toBeNull()
    }
  })
  it('makes an incident overdue only by the deadline still running', () => {
    const late = Date.parse('2026-12-01T05:00:00Z')
    expect(isOverdue(incident({ status: 'handling', accepted_at: accepted }), late)).toBe(true)
    expect(isOverdue(incident({ status: 'resolved', accepted_at: accepted }), late)).toBe(false)
    // accepted in time, the passed accept deadline no longer counts
    const early = Date.parse('2026-12-01T00:06:00Z')
    expect(isOverdue(incident({ status: 'accepted', accepted_at: accepted }), early)).toBe(false)
    expect(isOverdue(incident({}), early)).toBe(true)
  })
})

describe('which actions ask for confirmation', () => {
  it('asks for the irreversible ones only', () => {
    const all: Action[] = ['accept', 'dispatch', 'start', 'resolve', 'verify', 'reject', 'close',
      'rate', 'comment', 'acknowledge', 'summon', 'report_in', 'rate_unit', 'flag_unit', 'rate_whistle']
    expect(all.filter((a) => confirmationFor(a) !== null))
      .toEqual(['verify', 'reject', 'close', 'rate', 'flag_unit'])
  })
  it('closes only with a close reason, the comment optional', () => {
    const close = confirmationFor('close')!
    expect(isComplete(close, { closeReason: null, text: '已处理' })).toBe(false)
    expect(isComplete(close, { closeReason: 'false_alarm', text: '' })).toBe(true)
  })
  it('rejects a verification only with a written reason', () => {
    const reject = confirmationFor('reject')!
    expect(isComplete(reject, { closeReason: null, text: '  ' })).toBe(false)
    expect(isComplete(reject, { closeReason: null, text: '现场仍有堆物' })).toBe(true)
  })
  it('verifies on a plain confirmation', () => {
    expect(isComplete(confirmationFor('verify')!, { closeReason: null, text: '' })).toBe(true)
  })
})

describe('the popup facts', () => {
  const floorOf = (n: string): string => `${n}层`
  it('gives a bare floor number its unit and keeps written floors', () => {
    expect([floorText('5', floorOf), floorText('-1', floorOf), floorText('B1', floorOf),
      floorText('天台', floorOf), floorText(null, floorOf), floorText(' ', floorOf)])
      .toEqual(['5层', '-1层', 'B1', '天台', '', ''])
  })
  it('names the place down to the floor', () => {
    expect(placeWithFloor(incident({ floor: '5' }), floorOf)).toBe('楼村花园 3栋 5层')
    expect(placeWithFloor(incident({ building: null }), floorOf)).toBe('楼村花园')
  })
  it('finds the device of the first signal', () => {
    expect(firstSource([{ kind: 'smoke_alarm', source_id: 'SD-0002' }, { source_id: 'SD-9' }]))
      .toBe('SD-0002')
    expect(firstSource([])).toBeNull()
    expect(firstSource([{ kind: 'report' }])).toBeNull()
  })
})
