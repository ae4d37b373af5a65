import { describe, expect, it } from 'vitest'
import type { Incident } from '../api/types'
import { may, panelActions } from './actions'
import { kmBetween } from './distance'
import { cameraPictures, incidentPictures } from './evidence'
import { countdown, durationText } from './time'
import { isOverdue } from './deadline'
import { byUrgency, isAlarming, nextDeadline } from './whistle'

function incident(fields: Partial<Incident>): Incident {
  return {
    id: 1, rule_id: null, category: 'fire', priority: 'routine', status: 'reported',
    area: '440311001002', site: null, building: null, floor: null, title: 't',
    created_at: '2026-12-01T00:00:00Z', updated_at: '2026-12-01T00:00:00Z',
    accept_by: '2026-12-01T00:05:00Z', resolve_by: '2026-12-01T04:00:00Z', accepted_at: null,
    closed_at: null, close_reason: null, unit_id: null, suggested_unit_id: null, lat: null,
    lon: null, signal_count: 1, evidence: [], escalated_to: null, escalations: 0, rating: null,
    source: 'rule', rule_version: null, first_signal_at: '2026-12-01T00:00:00Z',
    last_signal_at: '2026-12-01T00:00:00Z', allowed_actions: [], ...fields,
  }
}

describe('countdown', () => {
  const now = Date.parse('2026-12-01T00:00:00Z')
  it('shows minutes and seconds left', () => {
    expect(countdown('2026-12-01T00:04:05Z', now)).toBe('4:05')
  })
  it('shows hours past an hour', () => {
    expect(countdown('2026-12-01T02:03:04Z', now)).toBe('2:03:04')
  })
  it('goes negative when overdue', () => {
    expect(countdown('2026-11-30T23:58:40Z', now)).toBe('-1:20')
  })
  it('says durations in the unit that reads best', () => {
    expect([durationText(null), durationText(42), durationText(90), durationText(7200)]).toEqual(
      ['—', '42 s', '1.5 min', '2.0 h'],
    )
  })
})

describe('the order of the board', () => {
  it('puts emergencies first, then the nearest deadline', () => {
    const routineSoon = incident({ id: 1, accept_by: '2026-12-01T00:01:00Z' })
    const emergencyLate = incident({ id: 2, priority: 'emergency', accept_by: '2026-12-01T00:09:00Z' })
    const majorSoon = incident({ id: 3, priority: 'major', accept_by: '2026-12-01T00:02:00Z' })
    const majorLater = incident({ id: 4, priority: 'major', accept_by: '2026-12-01T00:03:00Z' })
    const sorted = [routineSoon, majorLater, emergencyLate, majorSoon].sort(byUrgency)
    expect(sorted.map((i) => i.id)).toEqual([2, 3, 4, 1])
  })
  it('counts down to resolving once accepted', () => {
    const accepted = incident({ status: 'accepted', accepted_at: '2026-12-01T00:01:00Z' })
    expect(nextDeadline(accepted)).toBe(accepted.resolve_by)
    expect(isOverdue(accepted, Date.parse('2026-12-01T05:00:00Z'))).toBe(true)
    expect(isOverdue(incident({}), Date.parse('2026-12-01T00:01:00Z'))).toBe(false)
  })
  it('alarms for emergencies and major incidents only', () => {
    expect(['emergency', 'major', 'routine'].map((p) => isAlarming(incident({ priority: p as Incident['priority'] }))))
      .toEqual([true, true, false])
  })
})

describe('the actions offered', () => {
  it('are what the API allows, 吹哨报到 on the summon board', () => {
    const dispatched = incident({
      status: 'dispatched',
      allowed_actions: ['dispatch', 'start', 'close', 'comment', 'acknowledge', 'summon'],
    })
    expect(panelActions(dispatched)).toEqual(['dispatch', 'start', 'close', 'comment', 'acknowledge'])
    expect(may(dispatched, 'summon')).toBe(true)
    expect(may(dispatched, 'accept')).toBe(false)
  })
  it('are none where the API said nothing (an event of the live stream)', () => {
    expect(panelActions(incident({}))).toEqual([])
    expect(may(incident({}), 'comment')).toBe(false)
  })
})

describe('distance', () => {
  it('is about 1.1 km for a hundredth of a degree of latitude', () => {
    expect(kmBetween(22.78, 113.93, 22.79, 113.93)).toBeCloseTo(1.112, 2)
  })
})

describe('evidence pictures', () => {
  it("are the incident's evidence items that name a stored picture", () => {
    const evidence = [
      { kind: 'camera_fire', source_id: 'CAM-1', evidence: 'abc' },
      { kind: 'smoke', source_id: 'SD-1', signal_id: 7 },
      'a note',
      null,
    ]
    expect(incidentPictures(evidence)).toEqual([{ path: '/evidence/abc', alt: 'camera_fire CAM-1' }])
  })
  it("are a camera's evidence rows with an id", () => {
    expect(cameraPictures([{ id: 'def', event_type: 'intrusion' }, { event_type: 'fire' }])).toEqual([
      { path: '/evidence/def', alt: 'intrusion' },
    ])
  })
})
