// The alarm tone: two short beeps every two seconds, made with Web Audio (no sound file to
// fetch), until the incident is accepted or the desk mutes it.

export class AlarmTone {
  private context: AudioContext | null = null
  private timer: number | undefined

  get ringing(): boolean {
    return this.timer !== undefined
  }

  start(): void {
    if (this.timer !== undefined) return
    this.beep()
    this.timer = window.setInterval(() => this.beep(), 2000)
  }

  stop(): void {
    window.clearInterval(this.timer)
    this.timer = undefined
  }

  private beep(): void {
    this.context ??= new AudioContext()
    const now = this.context.currentTime
    for (const offset of [0, 0.3]) {
      const oscillator = this.context.createOscillator()
      const gain = this.context.createGain()
      oscillator.frequency.value = 880
      gain.gain.setValueAtTime(0.25, now + offset)
      gain.gain.exponentialRampToValueAtTime(0.001, now + offset + 0.25)
      oscillator.connect(gain).connect(this.context.destination)
      oscillator.start(now + offset)
      oscillator.stop(now + offset + 0.25)
    }
  }
}
