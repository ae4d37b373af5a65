// The API's shapes the console uses, each named once here and taken from schema.d.ts: the
// types openapi-typescript generates from the OpenAPI document the hub serves. `make console`
// regenerates them; tests/test_console_types.py fails when the checked-in ones are stale. What
// the document cannot say (which `/stats` grouping answers which rows, the live stream's
// events) is narrowed or written here, and says so.
import type { components, paths } from './schema'

type Schemas = components['schemas']

/** What an operation answers with, as JSON, on success (200 or 201). */
export type Answer<
  Path extends keyof paths,
  Method extends 'get' | 'post' | 'put' | 'patch' | 'delete',
> = paths[Path][Method] extends { responses: infer Responses }
  ? Success<Responses[200 & keyof Responses] | Responses[201 & keyof Responses]>
  : never
type Success<Response> = Response extends { content: { 'application/json': infer Body } }
  ? Body
  : never

/** An operation's query parameters. */
export type Query<Path extends keyof paths, Method extends 'get' | 'post'> =
  paths[Path][Method] extends { parameters: { query?: infer Parameters } }
    ? NonNullable<Parameters>
    : never

export type Priority = Schemas['Priority']
export type Status = Schemas['Status']
export type Role = Schemas['Role']
// What a role may do (api/permissions.py's table), as `/me` says it.
export type Capability = Schemas['Capability']
export type Action = Schemas['Action']
export type CloseReason = Schemas['CloseReason']
export type ActionBody = Schemas['ActionIn']
export type Me = Schemas['Me']
export type Names = Schemas['Names']
export type Vocabulary = Schemas['Vocabulary']
export type FieldError = Schemas['FieldError']
export type ErrorBody = Schemas['Error']

/** A photo people added to an incident (a resident's report, field staff on site). */
export type Attachment = Schemas['Attachment']
/** An incident as the API answers with it. Its own answers (`GET /incidents`,
 * `/incidents/{id}`) add `attachments`; an action's answer and the stream's do not. */
export type Incident = Schemas['IncidentWithPhotosForCaller']
export type IncidentFilter = Query<'/api/v1/incidents', 'get'>
export type AuditEntry = Schemas['AuditEntry']
export type Signal = Schemas['SignalOut']

// 吹哨报到: one summoned unit's 报到 record on an incident.
export type Summon = Schemas['Summon']
export type SummonStatus = Summon['status']
export type Light = Summon['light']
export type Flag = Summon['flags'][number]

export type Unit = Schemas['Unit']
export type Device = Schemas['DeviceWithState']
export type Camera = Schemas['Camera']
export type CameraStats = Answer<'/api/v1/cameras/{camera_id}/stats', 'get'>
export type EvidenceList = Answer<'/api/v1/evidence', 'get'>
// Whether the hub's vision workers analyse the cameras; `reason` says why not when `off`.
export type VisionState = Schemas['VisionState']

export type Rule = Schemas['StoredRule']
export type Backtest = Schemas['Backtest']
export type RuleStats = Schemas['RuleStats']

type StatsQuery = Query<'/api/v1/stats', 'get'>
export type Grouping = NonNullable<StatsQuery['group_by']>
/** `group_by=area`: the level areas roll up to (a street's communities into the street). */
export type AreaLevel = NonNullable<StatsQuery['level']>
export type UnitQuery = Query<'/api/v1/units', 'get'>
// `GET /stats` answers per-incident rows for every grouping but `unit`, and the summoned
// units' rows (部门考核) for `group_by=unit`: the document has one type for both.
type StatsOf<Row> = Omit<Schemas['Stats'], 'groups'> & { groups: Row[] }
export type GroupStats = Schemas['GroupStats']
export type Stats = StatsOf<GroupStats>
export type UnitStats = Schemas['UnitStats']
export type UnitStatsPage = StatsOf<UnitStats> & { group_by: 'unit' }

/** An event of the live stream (`/api/v1/stream`, a WebSocket, which the OpenAPI document does
 * not describe): `incident.*` events carry the incident, `stream.*` ones the stream's state. */
export interface StreamEvent {
  type: string
  id?: number
  area?: string
  incident?: Incident
  [key: string]: unknown
}

export type Area = Schemas['Area']
// The map's outlines (GET /boundaries): area boundaries, then building footprints.
export type MapLayer = Schemas['MapLayer']
export type MapFeatureProperties = MapLayer['features'][number]['properties']
// The wall's figures (GET /stats/today).
export type TodayStats = Schemas['TodayStats']
export type Hourly = TodayStats['alarms_hourly']
export type OnlineCount = TodayStats['devices']
