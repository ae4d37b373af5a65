import { createI18n } from 'vue-i18n'
import en from './locales/en'
import zh from './locales/zh-CN'

const saved = localStorage.getItem('sb_locale')

export const i18n = createI18n({
  legacy: false,
  locale: saved === 'en' ? 'en' : 'zh-CN',
  fallbackLocale: 'zh-CN',
  messages: { 'zh-CN': zh, en },
})

export function switchLocale(): void {
  const next = i18n.global.locale.value === 'en' ? 'zh-CN' : 'en'
  i18n.global.locale.value = next
  localStorage.setItem('sb_locale', next)
  document.documentElement.lang = next
}
