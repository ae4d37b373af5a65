// What each code is called: the hub's one vocabulary (GET /api/v1/names, hub/names.py), loaded
// once after sign-in into the messages of both languages, so that the screen says what the
// notifications and exports say and the console keeps no copy of its own.
import { api } from '../api/client'
import type { Names, Vocabulary } from '../api/types'
import { i18n } from '../i18n'

/** The message key each vocabulary fills (`$t('status.closed')`, `$t('categories.fire')`). */
const KEYS: Record<keyof Vocabulary, string> = {
  priorities: 'priority',
  statuses: 'status',
  close_reasons: 'reasons',
  actions: 'actions',
  audit_entries: 'audit',
  categories: 'categories',
  device_types: 'deviceTypes',
  unit_kinds: 'unitKinds',
  kinds: 'kinds',
  rules: 'ruleNames',
}

export function learnNames(names: Names): void {
  for (const language of ['zh-CN', 'en'] as const) {
    const vocabulary = names[language]
    const messages = Object.fromEntries(
      (Object.keys(KEYS) as (keyof Vocabulary)[]).map((name) => [KEYS[name], vocabulary[name]]),
    )
    i18n.global.mergeLocaleMessage(language, messages)
  }
}

export async function loadNames(): Promise<void> {
  learnNames(await api.names())
}

/** A code's name in the current language; the code itself where it has none (an operator's
 * own category). `vocabulary` is a message key of KEYS' (`categories`, `kinds`, ...). */
export function nameOf(vocabulary: string, code: string): string {
  const key = `${vocabulary}.${code}`
  return i18n.global.te(key) ? i18n.global.t(key) : code
}
