import { describe, expect, it } from 'vitest'
import type { Incident, Summon } from '../api/types'
import { lightAt, ratingsDue, reportedOfSummoned, statusAt } from './summons'

const start = Date.parse('2026-12-01T08:00:00Z')
const summon = (more: Partial<Summon> = {}): Summon => ({
  unit_id: 'D-ZJ', lead: false, summoned_by: 'x', summoned_level: '440311001',
  summoned_at: new Date(start).toISOString(),
  report_by: new Date(start + 100 * 60_000).toISOString(),
  acknowledged_at: null, reported_at: null, overdue_at: null, status: 'summoned',
  light: 'green', rating: null, rating_comment: null, flags: [], whistle_rating: null,
  whistle_comment: null, ...more,
})
const minutes = (n: number): number => start + n * 60_000

describe('the 报到 light', () => {
  it('is green to 80 %, yellow to 100 %, red after', () => {
    expect(lightAt(summon(), minutes(79))).toBe('green')
    expect(lightAt(summon(), minutes(80))).toBe('yellow')
    expect(lightAt(summon(), minutes(100))).toBe('yellow')
    expect(lightAt(summon(), minutes(101))).toBe('red')
    expect(statusAt(summon(), minutes(101))).toBe('overdue')
  })
  it('stops at the report-in', () => {
    const early = summon({ reported_at: new Date(minutes(30)).toISOString() })
    expect(lightAt(early, minutes(500))).toBe('green')
    expect(statusAt(early, minutes(500))).toBe('reported')
    const late = summon({ reported_at: new Date(minutes(120)).toISOString() })
    expect(lightAt(late, minutes(500))).toBe('red')
  })
})

describe('the board and the ratings', () => {
  const incident = (more: Partial<Incident>): Incident => ({ status: 'closed', priority: 'major',
    summons: [summon({ reported_at: new Date(minutes(1)).toISOString() }),
              summon({ unit_id: 'D-CG', rating: 3 })], ...more }) as Incident
  it('counts reported of summoned', () => {
    expect(reportedOfSummoned(incident({}))).toBe('1/2')
    expect(reportedOfSummoned(incident({ summons: [] }))).toBe('')
  })
  it('owes ratings for 重点哨 only, once closed', () => {
    expect(ratingsDue(incident({}))).toEqual(['D-ZJ'])
    expect(ratingsDue(incident({ priority: 'routine' }))).toEqual([])
    expect(ratingsDue(incident({ status: 'handling' }))).toEqual([])
  })
})
