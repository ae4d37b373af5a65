// Where an incident is, as a desk reads it: site, building and floor ("楼村花园 3栋 5层").
import type { Incident } from '../api/types'

/** A floor as stored (a device's or a report's free text): a bare number gains its unit
 * ("5" → "5层" through `floorOf`), anything else ("B1", "5层", "天台") stands as written. */
export function floorText(floor: string | null | undefined, floorOf: (n: string) => string): string {
  const value = floor?.trim()
  if (!value) return ''
  return /^-?\d+$/.test(value) ? floorOf(value) : value
}

/** The site, building and floor of an incident, those it has, in that order. */
export function placeWithFloor(
  incident: Pick<Incident, 'site' | 'building' | 'floor'>,
  floorOf: (n: string) => string,
): string {
  return [incident.site, incident.building, floorText(incident.floor, floorOf)]
    .filter(Boolean)
    .join(' ')
}
