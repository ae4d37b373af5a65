import { describe, expect, it } from 'vitest'
import { clusterPriority, percent, rowsThatFit, topCounts, wallUnit } from './wall'

describe('clusterPriority', () => {
  it('takes the most urgent whistle', () => {
    expect(clusterPriority(['routine', 'emergency', 'major'])).toBe('emergency')
    expect(clusterPriority(['routine', 'major'])).toBe('major')
    expect(clusterPriority(['routine'])).toBe('routine')
  })
})

describe('percent', () => {
  it('prints one decimal and a dash for no rate', () => {
    expect(percent(1 / 3)).toBe('33.3%')
    expect(percent(1)).toBe('100.0%')
    expect(percent(null)).toBe('—')
  })
})

describe('wallUnit', () => {
  it('scales with the screen', () => {
    expect(wallUnit(1920, 1080)).toBe(24)
    expect(wallUnit(3840, 2160)).toBe(48)
    expect(wallUnit(1280, 1024)).toBe(16) // 5:4: the width decides
  })
})

describe('rowsThatFit', () => {
  it('shows all that fit, or keeps a line for the rest', () => {
    expect(rowsThatFit(500, 50, 8)).toBe(8)
    expect(rowsThatFit(500, 50, 10)).toBe(10)
    expect(rowsThatFit(500, 50, 11)).toBe(9)
    expect(rowsThatFit(20, 50, 3)).toBe(0)
  })
})

describe('topCounts', () => {
  it('orders by count, then name', () => {
    expect(topCounts({ b: 1, a: 1, c: 5 }, 2)).toEqual([['c', 5], ['a', 1]])
  })
})
