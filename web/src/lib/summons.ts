// 吹哨报到 on the console: a summoned unit's light and state as the clock runs (the API says
// them as of its answer; the board keeps them moving between events).
import type { Incident, Light, Summon, SummonStatus } from '../api/types'

export const YELLOW_AT = 0.8

/** Green until 80 % of the allowed time, yellow to 100 %, red after (or once overdue). */
export function lightAt(summon: Summon, now: number): Light {
  const start = Date.parse(summon.summoned_at)
  const allowed = Date.parse(summon.report_by) - start
  const until = summon.reported_at ? Date.parse(summon.reported_at) : now
  const share = allowed > 0 ? (until - start) / allowed : 1
  if (statusAt(summon, now) === 'overdue' || share > 1) return 'red'
  return share >= YELLOW_AT ? 'yellow' : 'green'
}

export function statusAt(summon: Summon, now: number): SummonStatus {
  if (summon.reported_at) return 'reported'
  if (summon.overdue_at || now > Date.parse(summon.report_by)) return 'overdue'
  return summon.acknowledged_at ? 'acknowledged' : 'summoned'
}

/** "reported/summoned" for the board's column; empty when no whistle was blown. */
export function reportedOfSummoned(incident: Incident): string {
  const summons = incident.summons ?? []
  if (!summons.length) return ''
  return `${summons.filter((s) => s.reported_at).length}/${summons.length}`
}

/** 重点哨 (攻坚哨, 应急哨) are rated case by case once closed: the units still unrated. */
export function ratingsDue(incident: Incident): string[] {
  if (incident.status !== 'closed' || incident.priority === 'routine') return []
  return (incident.summons ?? []).filter((s) => s.rating === null).map((s) => s.unit_id)
}
