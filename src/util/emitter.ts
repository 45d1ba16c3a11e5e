// One typed event emitter for the whole project. Events carry one payload each (a map from event
// name to payload type, mediasoup-style), and `on` hands back its own unsubscribe function so
// callers never need to keep the listener around to remove it.

/** Unsubscribes the listener `on` registered. Idempotent. */
export type Unsubscribe = () => void;

export class TypedEmitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  on<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): Unsubscribe {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    // Wrapped so the same function registered twice is two registrations, each with its own unsubscribe.
    const entry = (payload: never): void => listener(payload);
    set.add(entry);
    return () => void set.delete(entry);
  }

  /** Like `on`, for the next event only. */
  once<K extends keyof Events>(event: K, listener: (payload: Events[K]) => void): Unsubscribe {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /**
   * Calls the listeners registered when the event is emitted, in registration order. A listener that
   * throws stops the emit and the error reaches the emitter, as with node's EventEmitter.
   */
  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) return;
    // A snapshot: listeners that unsubscribe (or subscribe) while this runs do not disturb it.
    for (const listener of [...set]) (listener as (p: Events[K]) => void)(payload);
  }

  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  removeAllListeners(): void {
    this.listeners.clear();
  }
}
