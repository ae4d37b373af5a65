// Every call the console makes to the hub: one place that adds the token, reads the one
// error shape (`{"error": {code, message, fields}}`) and knows the paths.
import type {
  ActionBody,
  Answer,
  Area,
  AreaLevel,
  AuditEntry,
  Backtest,
  CameraStats,
  ErrorBody,
  EvidenceList,
  FieldError,
  Grouping,
  Incident,
  IncidentFilter,
  MapLayer,
  Me,
  Names,
  Rule,
  RuleStats,
  Signal,
  Stats,
  TodayStats,
  UnitQuery,
  UnitStatsPage,
  VisionState,
} from './types'
import { token } from '../session'

export const API = '/api/v1'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: FieldError[] = [],
  ) {
    super(message)
  }
}

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers)
  const bearer = token()
  if (bearer) headers.set('Authorization', `Bearer ${bearer}`)
  if (init.body !== undefined && !headers.has('Content-Type')) {
    headers.set('Content-Type', 'application/json')
  }
  const response = await fetch(API + path, { ...init, headers })
  if (response.status === 204) return undefined as T
  const body: unknown = await response.json().catch(() => null)
  if (!response.ok) {
    const error = (body as Partial<ErrorBody> | null)?.error
    throw new ApiError(
      response.status,
      error?.code ?? 'error',
      error?.message ?? response.statusText,
      error?.fields ?? [],
    )
  }
  return body as T
}

type Parameter = string | number | boolean | null | undefined | string[]

function query(params: Record<string, Parameter>): string {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, String(one))
  }
  const text = search.toString()
  return text ? `?${text}` : ''
}

/** A list's page: every list of the API answers one (`Page_*` in its document). */
interface Page<T> {
  items: T[]
  next?: string | null
}

/** Every item of a paged list, following `next` (the console shows all of them). */
async function everything<T>(path: string): Promise<T[]> {
  const items: T[] = []
  let cursor: string | undefined
  do {
    const page = await call<Page<T>>(`${path}${query({ limit: 500, cursor })}`)
    items.push(...page.items)
    cursor = page.next ?? undefined
  } while (cursor)
  return items
}

export const api = {
  me: () => call<Me>('/me'),
  names: () => call<Names>('/names'),
  incidents: (filter: IncidentFilter = {}, limit = 500) =>
    call<Answer<'/api/v1/incidents', 'get'>>(`/incidents${query({ ...filter, limit })}`),
  incident: (id: number) => call<Incident>(`/incidents/${id}`),
  audit: (id: number) => call<AuditEntry[]>(`/incidents/${id}/audit`),
  incidentSignals: (id: number) => call<Signal[]>(`/incidents/${id}/signals`),
  act: (id: number, body: ActionBody) =>
    call<Answer<'/api/v1/incidents/{incident_id}/actions', 'post'>>(`/incidents/${id}/actions`, {
      method: 'POST',
      body: JSON.stringify(body),
    }),
  units: () => call<Answer<'/api/v1/units', 'get'>>(`/units${query({ limit: 500 })}`),
  /** Departments a whistle may summon: the caller's and those over its area. */
  departments: () =>
    call<Answer<'/api/v1/units', 'get'>>(
      `/units${query({ kind: 'department', above: true, limit: 500 } satisfies UnitQuery)}`,
    ),
  unitStats: (from?: string, to?: string) =>
    call<UnitStatsPage>(`/stats${query({ group_by: 'unit', from, to })}`),
  /** The stats as a CSV sheet (behind the token), saved by the browser. */
  async downloadStats(
    groupBy: Grouping,
    from?: string,
    to?: string,
    level?: AreaLevel,
  ): Promise<void> {
    const path = `/stats.csv${query({ group_by: groupBy, from, to, level })}`
    const response = await fetch(API + path, { headers: { Authorization: `Bearer ${token()}` } })
    if (!response.ok) throw new ApiError(response.status, 'csv', response.statusText)
    const link = document.createElement('a')
    link.href = URL.createObjectURL(await response.blob())
    link.download = `stats-${groupBy}.csv`
    link.click()
    URL.revokeObjectURL(link.href)
  },
  devices: () => call<Answer<'/api/v1/devices', 'get'>>(`/devices${query({ limit: 500 })}`),
  cameras: () => call<Answer<'/api/v1/cameras', 'get'>>(`/cameras${query({ limit: 500 })}`),
  vision: () => call<VisionState>('/vision'),
  cameraStats: (id: string) => call<CameraStats>(`/cameras/${id}/stats`),
  cameraEvidence: (id: string, limit = 3) =>
    call<EvidenceList>(`/evidence${query({ camera_id: id, limit })}`),
  signals: (limit = 50) => call<Answer<'/api/v1/signals', 'get'>>(`/signals${query({ limit })}`),
  /** The wall's figures for today, within the token's area. */
  today: () => call<TodayStats>('/stats/today'),
  areas: () => everything<Area>('/areas'),
  /** The boundaries and building footprints under the token's area, for the map. */
  boundaries: () => call<MapLayer>('/boundaries'),
  stats: (groupBy: Exclude<Grouping, 'unit'>, from?: string, to?: string, level?: AreaLevel) =>
    call<Stats>(`/stats${query({ group_by: groupBy, from, to, level })}`),
  rules: () => everything<Rule>('/rules'),
  setRuleEnabled: (id: string, enabled: boolean) =>
    call<Rule>(`/rules/${id}`, { method: 'PATCH', body: JSON.stringify({ enabled }) }),
  /** JSON, or YAML when the text is not JSON (the API takes both). */
  saveRule: (id: string, document: string) =>
    call<Rule>(`/rules/${id}`, {
      method: 'PUT',
      body: document,
      headers: { 'Content-Type': document.trimStart().startsWith('{') ? 'application/json' : 'application/yaml' },
    }),
  backtest: (id: string, from: string, to: string, rule?: unknown) =>
    call<Backtest>(`/rules/${id}/backtest`, {
      method: 'POST',
      body: JSON.stringify({ from, to, rule }),
    }),
  ruleStats: (id: string, from: string, to: string) =>
    call<RuleStats>(`/rules/${id}/stats${query({ from, to })}`),
  /** A picture behind the token (evidence, attachments) as an object URL for an <img>. */
  async picture(path: string): Promise<string> {
    const response = await fetch(API + path, { headers: { Authorization: `Bearer ${token()}` } })
    if (!response.ok) throw new ApiError(response.status, 'picture', response.statusText)
    return URL.createObjectURL(await response.blob())
  },
}
