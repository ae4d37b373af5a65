// The token lives in this tab's sessionStorage only: never in a URL, gone with the tab.
import { reactive } from 'vue'
import type { Me } from './api/types'

const KEY = 'sb_token'

export const session = reactive<{ me: Me | null }>({ me: null })

export function token(): string | null {
  return sessionStorage.getItem(KEY)
}

export function keepToken(value: string): void {
  sessionStorage.setItem(KEY, value)
}

export function forget(): void {
  sessionStorage.removeItem(KEY)
  session.me = null
}
