// Evidence pictures. The API's document leaves these items free-form (an incident's
// `evidence` is a list of anything, a camera's latest evidence a list of objects), so the
// console reads the fields it shows, as strings, and leaves out items that lack them.

export interface Picture {
  /** Under /api/v1; fetched with the token (EvidencePicture). */
  path: string
  alt: string
}

function text(item: unknown, key: string): string | undefined {
  if (typeof item !== 'object' || item === null) return undefined
  const value = (item as Record<string, unknown>)[key]
  return typeof value === 'string' ? value : undefined
}

/** The items of an incident's evidence that name a stored picture (a camera's signals). */
export function incidentPictures(evidence: readonly unknown[]): Picture[] {
  return evidence.flatMap((item) => {
    const id = text(item, 'evidence')
    if (!id) return []
    return [{ path: `/evidence/${id}`, alt: `${text(item, 'kind') ?? ''} ${text(item, 'source_id') ?? ''}` }]
  })
}

/** A camera's latest evidence (`GET /evidence?camera_id=`): each row's picture. */
export function cameraPictures(rows: readonly unknown[]): Picture[] {
  return rows.flatMap((row) => {
    const id = text(row, 'id')
    return id ? [{ path: `/evidence/${id}`, alt: text(row, 'event_type') ?? '' }] : []
  })
}

/** The device (or camera) whose signal opened the incident: its first evidence item's source. */
export function firstSource(evidence: readonly unknown[]): string | null {
  return evidence.length ? (text(evidence[0], 'source_id') ?? null) : null
}
