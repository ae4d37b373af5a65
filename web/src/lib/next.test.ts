import { describe, expect, it } from 'vitest'
import { afterLogin } from './next'

describe('afterLogin', () => {
  it('goes to the page a link asked for', () => {
    expect(afterLogin('/incidents/42')).toBe('/incidents/42')
    expect(afterLogin('/map?x=1')).toBe('/map?x=1')
  })
  it('never leaves the console', () => {
    for (const elsewhere of ['//evil.example/x', 'https://evil.example', '/\\evil.example', 'map']) {
      expect(afterLogin(elsewhere)).toBe('/')
    }
  })
  it('goes to the board without one', () => {
    expect(afterLogin(undefined)).toBe('/')
    expect(afterLogin(['/a', '/b'])).toBe('/')
  })
})
