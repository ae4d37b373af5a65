// The API's shapes the console uses (docs/design.md §6; the OpenAPI document is the reference).

export type Priority = 'emergency' | 'major' | 'routine'
export type Status =
  | 'reported'
  | 'accepted'
  | 'dispatched'
  | 'handling'
  | 'resolved'
  | 'verified'
  | 'closed'
export type Role =
  | 'admin'
  | 'integrator'
  | 'operator'
  | 'dispatcher'
  | 'viewer'
  | 'grid_worker'
export type Action =
  | 'accept'
  | 'dispatch'
  | 'start'
  | 'resolve'
  | 'verify'
  | 'reject'
  | 'close'
  | 'rate'
  | 'comment'
  | 'acknowledge'
  | 'summon'
  | 'report_in'
  | 'rate_unit'
  | 'flag_unit'
  | 'rate_whistle'
// What a role may do (api/permissions.py's table), as `/me` says it.
export type Capability =
  | 'read'
  | 'list_incidents'
  | 'read_incident'
  | 'report_incident'
  | 'act_on_incident'
  | 'attach_photo'
  | 'register'
  | 'read_dead_letters'
  | 'edit_zones'
  | 'manage_units'
  | 'manage_tokens'
  | 'edit_rules'
  | 'manage_routes'
  | 'edit_templates'
  | 'manage_channels'
  | 'manage_intake_keys'
  | 'manage_uplinks'
  | 'keep_registers'
  | 'read_evidence'
  | 'read_id_cards'
  | 'manage_watchlists'
  | 'silence'
  | 'command_devices'
  | 'push_device_data'
  | 'hold_unit_link'
export type CloseReason = 'resolved' | 'false_alarm' | 'duplicate' | 'not_responsible'

export interface Me {
  name: string
  role: Role
  area_prefix: string
  unit_id: string | null
  map_tiles: string | null
  capabilities: Capability[]
  /** The actions its role takes on incidents; each incident's `allowed_actions` says which now. */
  incident_actions: Action[]
}

export interface Evidence {
  evidence?: string
  camera_id?: string
  [key: string]: unknown
}

/** A photo people added to an incident (a resident's report, field staff on site). */
export interface Attachment {
  id: string
  url: string
  content_type: string
  width: number
  height: number
  uploaded_by: string
  created_at: string
}

export interface Incident {
  id: number
  rule_id: string | null
  category: string
  priority: Priority
  status: Status
  area: string
  site: string | null
  building: string | null
  floor: string | null
  title: string
  created_at: string
  updated_at: string
  accept_by: string
  resolve_by: string
  accepted_at: string | null
  closed_at: string | null
  close_reason: CloseReason | null
  unit_id: string | null
  suggested_unit_id: string | null
  lat: number | null
  lon: number | null
  signal_count: number
  evidence: Evidence[]
  /** On the incident's own answers (not on an action's). */
  attachments?: Attachment[]
  escalated_to: string | null
  escalations: number
  rating: number | null
  source: 'rule' | 'report' | 'public'
  summons?: Summon[]
  /** What the caller may do on it now (the API's answers; not on the live stream's events). */
  allowed_actions?: Action[]
}

// 吹哨报到: one summoned unit's 报到 record on an incident.
export type SummonStatus = 'summoned' | 'acknowledged' | 'reported' | 'overdue'
export type Light = 'green' | 'yellow' | 'red'
export type Flag = 'not_reported' | 'late' | 'shirking' | 'repeat'

export interface Summon {
  unit_id: string
  lead: boolean
  summoned_by: string
  summoned_level: string
  summoned_at: string
  report_by: string
  acknowledged_at: string | null
  reported_at: string | null
  overdue_at: string | null
  status: SummonStatus
  light: Light
  rating: number | null
  rating_comment: string | null
  flags: Flag[]
  whistle_rating: number | null
  whistle_comment: string | null
}

export interface UnitStats {
  key: string
  name: string | null
  summoned: number
  reported: number
  reported_on_time: number
  on_time_rate: number | null
  resolved: number
  mean_rating: number | null
  rated: number
  flags: Partial<Record<Flag, number>>
}

export interface Page<T> {
  items: T[]
  next: string | null
}

export interface AuditEntry {
  at: string
  actor: string
  action: string
  from_status: Status | null
  to_status: Status
  note: string | null
  data: Record<string, unknown>
}

export interface Signal {
  id: number
  ts: string
  kind: string
  source_id: string
  source_type: string
  area: string
  site: string | null
  building: string | null
  value: number | null
  confidence: number
  attrs: Record<string, unknown>
}

export interface Unit {
  id: string
  name: string
  kind: string
  area: string
  lat: number | null
  lon: number | null
  categories: string[]
  on_duty: boolean
  parent_id?: string | null
}

export interface DeviceState {
  status: string
  last_seen: string | null
  offline_since?: string | null
  battery_pct: number | null
  rssi_dbm: number | null
  fw: string | null
}

export interface Device {
  id: string
  type: string
  area: string
  site: string | null
  building: string | null
  lat: number | null
  lon: number | null
  enabled: boolean
  state: DeviceState
}

export interface Camera {
  id: string
  area: string
  site: string | null
  building: string | null
  lat: number | null
  lon: number | null
  enabled: boolean
}

// Whether the hub's vision workers analyse the cameras; `reason` says why not when `off`.
export interface VisionState {
  state: 'analysing' | 'idle' | 'off'
  reason: string | null
  workers: number
}

export interface GroupStats {
  key: string
  total: number
  by_status: Record<string, number>
  on_time_accept_rate: number | null
  closure_rate: number | null
  accept_mean_s: number | null
  accept_p90_s: number | null
  close_mean_s: number | null
  close_p90_s: number | null
  mean_rating: number | null
  whistles?: Partial<Record<Priority, number>> | null
  mean_whistle_rating?: number | null
  satisfaction?: number | null
}

export interface Stats {
  start: string
  end: string
  group_by: string
  groups: GroupStats[]
}

export interface UnitStatsPage {
  start: string
  end: string
  group_by: 'unit'
  groups: UnitStats[]
}

export interface Rule {
  id: string
  version: number
  enabled: boolean
  builtin: boolean
  document: Record<string, unknown>
  created_at: string
  updated_at: string
}

export interface FieldError {
  field: string
  message: string
}

export interface StreamEvent {
  type: string
  id?: number
  area?: string
  incident?: Incident
  [key: string]: unknown
}
