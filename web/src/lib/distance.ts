// Great-circle distance, for ordering units by how far they are from an incident.

export function kmBetween(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180
  const dp = (lat2 - lat1) * rad
  const dl = (lon2 - lon1) * rad
  const a =
    Math.sin(dp / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dl / 2) ** 2
  return 2 * 6371.0088 * Math.asin(Math.sqrt(a))
}
