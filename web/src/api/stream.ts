// The live stream (`/api/v1/stream`): the token goes in the first message, never the URL;
// reconnects with backoff; after a reconnect or a `stream.gap` the caller fetches again.
import type { StreamEvent } from './types'
import { token } from '../session'

export interface StreamHandlers {
  event: (event: StreamEvent) => void
  /** Connected (again): what was shown may be stale, fetch it anew. */
  resync: () => void
  status: (connected: boolean) => void
}

export class LiveStream {
  private socket: WebSocket | null = null
  private delay = 500
  private stopped = false
  private timer: number | undefined

  constructor(private readonly handlers: StreamHandlers) {}

  start(): void {
    this.stopped = false
    this.open()
  }

  stop(): void {
    this.stopped = true
    window.clearTimeout(this.timer)
    this.socket?.close()
  }

  private open(): void {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/stream`)
    this.socket = socket
    socket.onopen = () => socket.send(JSON.stringify({ type: 'auth', token: token() }))
    socket.onmessage = (message) => this.received(JSON.parse(message.data as string))
    socket.onclose = () => {
      this.handlers.status(false)
      if (this.stopped) return
      this.timer = window.setTimeout(() => this.open(), this.delay)
      this.delay = Math.min(this.delay * 2, 10_000)
    }
  }

  private received(event: StreamEvent): void {
    if (event.type === 'stream.ready') {
      this.delay = 500
      this.handlers.status(true)
      this.handlers.resync()
    } else if (event.type === 'stream.gap') {
      this.handlers.resync()
    } else {
      this.handlers.event(event)
    }
  }
}
