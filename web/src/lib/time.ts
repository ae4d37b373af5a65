// Countdowns as a duty officer reads them: "4:05" left, "-1:20" over, hours past an hour.

export function countdown(deadline: string, now: number): string {
  const seconds = Math.round((Date.parse(deadline) - now) / 1000)
  const sign = seconds < 0 ? '-' : ''
  let rest = Math.abs(seconds)
  const hours = Math.floor(rest / 3600)
  rest -= hours * 3600
  const minutes = Math.floor(rest / 60)
  const secs = rest - minutes * 60
  const mm = hours > 0 ? String(minutes).padStart(2, '0') : String(minutes)
  const body = `${mm}:${String(secs).padStart(2, '0')}`
  return sign + (hours > 0 ? `${hours}:${body}` : body)
}

export function durationText(seconds: number | null): string {
  if (seconds === null) return '—'
  if (seconds < 60) return `${Math.round(seconds)} s`
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`
  return `${(seconds / 3600).toFixed(1)} h`
}

export function localTime(iso: string, locale: string): string {
  return new Date(iso).toLocaleString(locale, { hour12: false })
}
